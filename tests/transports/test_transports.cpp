// Transport behaviour: pipelines, AUTH, EVALSHA/NOSCRIPT, deadlines on a server that
// stops answering, reconnect after a restart.
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <csignal>

#include "support/helpers.hpp"
#include "support/servers.hpp"
#include "tier/cache.hpp"
#include "tier/sync/scan_delete.hpp"
#include "tier/uv/scan_delete.hpp"

using namespace std::chrono_literals;
using tiertest::Runner;

TEST_CASE("Pipeline: many ops in one run, each result to its own callback", "[client]") {
  auto& redis = tiertest::redis();
  tiertest::TestKeys keys(redis.client(), "pipe");
  tier::Cache cache({.prefix = keys.prefix()});
  tier::Client client(redis.url());
  tier::Pipeline p;
  int ok = 0;
  for (int i = 0; i < 50; ++i) {
    p.add(cache.set(cache.session("s", std::to_string(i)), i),
          [&](tier::Result<tier::Unit> r) { ok += r.ok(); });
  }
  std::optional<tier::Result<std::optional<tier::Json>>> bad;
  p.add(cache.get(cache.session("", "x")), [&](auto r) { bad.emplace(std::move(r)); });
  p.run(client);
  CHECK(ok == 50);
  CHECK(redis.client().run(cache.get(cache.session("s", "49"))) == tier::Json(49));
  REQUIRE(bad.has_value());
  CHECK_FALSE(bad->ok());
  CHECK(p.size() == 0);
}

TEST_CASE("AUTH with a password from the URL or the environment; never in errors", "[client]") {
  tiertest::RedisServer secured({.password = "s3cret-pw"});
  for (auto kind : {Runner::Kind::sync, Runner::Kind::async}) {
    Runner ok(kind, "redis://:s3cret-pw@127.0.0.1:" + std::to_string(secured.port()));
    CHECK(ok.run(tier::raw({"PING"})).ok());
  }
  ::setenv("TIERD_REDIS_PASSWORD", "s3cret-pw", 1);
  {
    tier::Client env_client("redis://127.0.0.1:" + std::to_string(secured.port()));
    CHECK(env_client.try_run(tier::raw({"PING"})).ok());
  }
  ::unsetenv("TIERD_REDIS_PASSWORD");
  tier::Client wrong("redis://:nope-pw@127.0.0.1:" + std::to_string(secured.port()));
  auto r = wrong.try_run(tier::raw({"PING"}));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().kind == tier::ErrorKind::reply);
  CHECK_THAT(r.error().message, !Catch::Contains("nope-pw"));
}

TEST_CASE("Scripts: EVALSHA, and EVAL when the script cache was flushed", "[client][lua]") {
  auto& redis = tiertest::redis();
  for (auto kind : {Runner::Kind::sync, Runner::Kind::async}) {
    Runner run(kind, redis.url());
    INFO(run.name());
    tiertest::TestKeys keys(redis.client(), "lua");
    redis.client().run(tier::raw({"SET", keys("a"), "1"}));
    redis.client().run(tier::raw({"SCRIPT", "FLUSH"}));
    auto step = run.run(tier::scan_unlink_step("0", keys.prefix() + "*", 1000));
    REQUIRE(step.ok());
    // The fallback EVAL loaded the script again: its SHA is known to Redis now.
    auto exists =
        redis.client().run(tier::raw({"SCRIPT", "EXISTS", tier::script("scan_unlink").sha1}));
    CHECK(exists.elements.at(0).integer == 1);
  }
}

TEST_CASE("AsyncClient: a server that stops answering fails ops with timeout, then recovers",
          "[async][fault]") {
  tiertest::RedisServer server;
  tiertest::TestLoop loop;
  tier::AsyncOptions o;
  o.endpoint = tier::RedisEndpoint::parse(server.url());
  o.command_timeout = 300ms;
  o.connect_timeout = 300ms;
  o.reconnect_min = 20ms;
  o.reconnect_max = 100ms;
  tier::AsyncClient client(loop.get(), o);
  std::vector<tier::LinkState> states;
  client.on_state([&](tier::LinkState s, const std::string&) { states.push_back(s); });
  client.start();
  REQUIRE(loop.run_until([&] { return client.state() == tier::LinkState::ready; }));

  server.pause();
  std::optional<tier::Result<tier::Reply>> r;
  auto t0 = std::chrono::steady_clock::now();
  client.run(tier::raw({"PING"}), [&](auto res) { r.emplace(std::move(res)); });
  REQUIRE(loop.run_until([&] { return r.has_value(); }, 3s));
  auto took = std::chrono::steady_clock::now() - t0;
  REQUIRE_FALSE(r->ok());
  CHECK(r->error().kind == tier::ErrorKind::timeout);
  CHECK(took < 1s);
  CHECK(client.counters().timeouts >= 1);
  CHECK(client.state() != tier::LinkState::ready);

  server.resume();
  REQUIRE(loop.run_until([&] { return client.state() == tier::LinkState::ready; }, 5s));
  std::optional<tier::Result<tier::Reply>> r2;
  client.run(tier::raw({"PING"}), [&](auto res) { r2.emplace(std::move(res)); });
  REQUIRE(loop.run_until([&] { return r2.has_value(); }));
  CHECK(r2->ok());
}

TEST_CASE("AsyncClient: reconnects after a restart; ops queued meanwhile run or time out",
          "[async][fault]") {
  tiertest::RedisServer server;
  tiertest::TestLoop loop;
  tier::AsyncOptions o;
  o.endpoint = tier::RedisEndpoint::parse(server.url());
  o.command_timeout = 3s;
  o.reconnect_min = 20ms;
  o.reconnect_max = 200ms;
  tier::AsyncClient client(loop.get(), o);
  client.start();
  REQUIRE(loop.run_until([&] { return client.state() == tier::LinkState::ready; }));
  server.stop();
  REQUIRE(loop.run_until([&] { return client.state() != tier::LinkState::ready; }));
  std::optional<tier::Result<tier::Reply>> queued;
  client.run(tier::raw({"SET", "after-restart", "1"}),
             [&](auto r) { queued.emplace(std::move(r)); });
  server.start();
  REQUIRE(loop.run_until([&] { return queued.has_value(); }, 5s));
  CHECK(queued->ok());
  CHECK(client.counters().connects >= 2);
  CHECK(server.client().run(tier::raw({"GET", "after-restart"})).str == "1");

  // With nobody listening, a queued op fails by its own deadline, not never.
  server.stop();
  REQUIRE(loop.run_until([&] { return client.state() != tier::LinkState::ready; }));
  std::optional<tier::Result<tier::Reply>> lost;
  tier::Op<tier::Reply> op = tier::raw({"PING"});
  op.timeout = 200ms;
  client.run(std::move(op), [&](auto r) { lost.emplace(std::move(r)); });
  REQUIRE(loop.run_until([&] { return lost.has_value(); }, 3s));
  CHECK(lost->error().kind == tier::ErrorKind::timeout);
}

TEST_CASE("AsyncClient: close() fails pending ops with closed; nothing hangs", "[async]") {
  tiertest::RedisServer server;
  tiertest::TestLoop loop;
  tier::AsyncOptions o;
  o.endpoint = tier::RedisEndpoint::parse(server.url());
  auto client = std::make_unique<tier::AsyncClient>(loop.get(), o);
  client->start();
  REQUIRE(loop.run_until([&] { return client->state() == tier::LinkState::ready; }));
  server.pause();
  int failed = 0;
  for (int i = 0; i < 10; ++i) {
    client->run(tier::raw({"PING"}),
                [&](auto r) { failed += !r.ok() && r.error().kind == tier::ErrorKind::closed; });
  }
  client->close();
  CHECK(failed == 10);
  client.reset();
  server.resume();
}

TEST_CASE("AsyncClient, AsyncSubscriber: a destructor never calls back into its owner", "[async]") {
  tiertest::RedisServer server;
  tiertest::TestLoop loop;
  tier::AsyncOptions o;
  o.endpoint = tier::RedisEndpoint::parse(server.url());
  // Whatever the callbacks would touch dies with them: a call after destruction is a
  // use-after-free under ASan, and a count here otherwise.
  auto calls = std::make_shared<int>(0);
  {
    auto client = std::make_unique<tier::AsyncClient>(loop.get(), o);
    tier::SubscriberOptions so;
    so.link = o;
    so.patterns = {"events:*"};
    auto sub = std::make_unique<tier::AsyncSubscriber>(loop.get(), so,
                                                       [calls](const tier::PushMessage&) {});
    client->on_state([calls](tier::LinkState, const std::string&) { ++*calls; });
    sub->on_state([calls](tier::LinkState, const std::string&) { ++*calls; });
    client->start();
    sub->start();
    REQUIRE(loop.run_until([&] {
      return client->state() == tier::LinkState::ready && sub->state() == tier::LinkState::ready;
    }));
    server.pause();
    for (int i = 0; i < 10; ++i) {
      client->run(tier::raw({"PING"}), [calls](auto) { ++*calls; });
    }
    *calls = 0;
    client.reset();
    sub.reset();
  }
  CHECK(*calls == 0);
  CHECK(calls.use_count() == 1);  // the callbacks were released, not kept alive
  server.resume();
}

TEST_CASE("Client: bounded pool, stale connections replaced after a restart", "[client][fault]") {
  tiertest::RedisServer server;
  tier::ClientOptions o;
  o.endpoint = tier::RedisEndpoint::parse(server.url());
  o.pool_size = 2;
  tier::Client client(o);
  REQUIRE(client.try_run(tier::raw({"PING"})).ok());
  server.restart();
  // The pooled connection died with the old server; the call still succeeds.
  auto r = client.try_run(tier::raw({"PING"}));
  CHECK(r.ok());
  server.stop();
  auto down = client.try_run(tier::raw({"PING"}));
  REQUIRE_FALSE(down.ok());
  CHECK(down.error().kind == tier::ErrorKind::io);
  CHECK_THAT(down.error().message, Catch::Contains("127.0.0.1"));
}

TEST_CASE("Client: a server that stops answering times out the command", "[client][fault]") {
  tiertest::RedisServer server;
  tier::ClientOptions o;
  o.endpoint = tier::RedisEndpoint::parse(server.url());
  o.command_timeout = 200ms;
  tier::Client client(o);
  REQUIRE(client.try_run(tier::raw({"PING"})).ok());
  server.pause();
  auto r = client.try_run(tier::raw({"PING"}));
  CHECK_THROWS_AS(client.run(tier::raw({"PING"})), tier::TimeoutError);
  server.resume();
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().kind == tier::ErrorKind::timeout);
  // The timed-out connections were dropped; a new one works.
  CHECK(client.try_run(tier::raw({"PING"})).ok());
}

TEST_CASE("AsyncClient: host names are resolved off the loop; unknown names fail cleanly",
          "[async]") {
  auto& redis = tiertest::redis();
  tiertest::TestLoop loop;
  tier::AsyncOptions o;
  o.endpoint = tier::RedisEndpoint::parse(redis.url());
  o.endpoint.host = "localhost";
  tier::AsyncClient client(loop.get(), o);
  client.start();
  std::optional<tier::Result<tier::Reply>> r;
  client.run(tier::raw({"PING"}), [&](auto res) { r.emplace(std::move(res)); });
  REQUIRE(loop.run_until([&] { return r.has_value(); }));
  CHECK(r->ok());

  tier::AsyncOptions bad = o;
  bad.endpoint.host = "no-such-host.invalid";
  bad.command_timeout = 300ms;
  tier::AsyncClient nowhere(loop.get(), bad);
  std::vector<std::string> reasons;
  nowhere.on_state([&](tier::LinkState, const std::string& why) { reasons.push_back(why); });
  nowhere.start();
  std::optional<tier::Result<tier::Reply>> lost;
  nowhere.run(tier::raw({"PING"}), [&](auto res) { lost.emplace(std::move(res)); });
  REQUIRE(loop.run_until([&] { return lost.has_value(); }, 3s));
  CHECK(lost->error().kind == tier::ErrorKind::timeout);
  CHECK(std::any_of(reasons.begin(), reasons.end(), [](const std::string& w) {
    return w.find("resolve no-such-host.invalid") != std::string::npos;
  }));
}

namespace {

// Runs `body` in a forked child and returns its wait status (the child exits with the
// body's return value). Signal dispositions are per process: the test binary keeps its own.
int in_child(const std::function<int()>& body) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::_exit(body());
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

// Writes to a socket whose peer is gone: the second write is the one that raises SIGPIPE.
int write_to_closed_peer() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) {
    return 2;
  }
  ::close(fds[1]);
  const char byte = 'x';
  const bool failed = ::write(fds[0], &byte, 1) < 0 && ::write(fds[0], &byte, 1) < 0;
  return failed && errno == EPIPE ? 0 : 3;
}

}  // namespace

TEST_CASE("transports: a peer that resets a socket costs an EPIPE, not the process",
          "[async][client]") {
  tier::ClientOptions co;
  co.endpoint = tier::RedisEndpoint::parse("redis://127.0.0.1:1");
  SECTION("a Client was built: SIGPIPE is ignored") {
    const int st = in_child([&] {
      std::signal(SIGPIPE, SIG_DFL);
      tier::Client client(co);
      return write_to_closed_peer();
    });
    CHECK(WIFEXITED(st));
    CHECK(WEXITSTATUS(st) == 0);
  }
  SECTION("an AsyncClient was built: SIGPIPE is ignored") {
    const int st = in_child([&] {
      std::signal(SIGPIPE, SIG_DFL);
      uv_loop_t loop;
      uv_loop_init(&loop);
      tier::AsyncOptions o;
      o.endpoint = co.endpoint;
      tier::AsyncClient client(&loop, o);
      return write_to_closed_peer();
    });
    CHECK(WIFEXITED(st));
    CHECK(WEXITSTATUS(st) == 0);
  }
  SECTION("an application's own SIGPIPE handler is left alone") {
    const int st = in_child([&] {
      static volatile std::sig_atomic_t seen = 0;
      std::signal(SIGPIPE, [](int) { seen = 1; });
      tier::Client client(co);
      const int rc = write_to_closed_peer();
      return rc == 0 && seen == 1 ? 0 : 4;
    });
    CHECK(WIFEXITED(st));
    CHECK(WEXITSTATUS(st) == 0);
  }
}
