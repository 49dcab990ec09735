// The real tierd binary, as systemd runs it: config file, HTTP endpoints, signals, and
// Redis failing under it (restart, SIGSTOP).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <csignal>
#include <fstream>
#include <sstream>

#include "handlers/http_test_server.hpp"
#include "support/helpers.hpp"
#include "support/servers.hpp"
#include "tier/op.hpp"
#include "tierd_process.hpp"

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using tiertest::HttpReply;
using tiertest::sample;
using tiertest::Tierd;

TEST_CASE("tierd binary: invalidates, counts bad input in /metrics, survives SIGHUP, exits 0") {
  tier::Client& c = tiertest::redis().client();
  tiertest::TestKeys keys(c, "binary");
  Tierd t(tiertest::redis().url(), keys.prefix());
  REQUIRE(tiertest::eventually([&] { return t.ready(); }, 5s));
  CHECK(t.get("/healthz").status == 200);

  c.run(tier::raw({"SET", keys("plain:a"), "v"}));
  c.run(tier::raw({"PUBLISH", "system:cache_invalidation", R"({"keys":["plain:a"]})"}));
  REQUIRE(tiertest::eventually(
      [&] {
        return c.run(tier::raw({"EXISTS", keys("plain:a")})).integer == 0;
      },
      2s));

  c.run(tier::raw({"PUBLISH", "system:cache_invalidation", "{not json"}));
  c.run(tier::raw({"PUBLISH", "system:cache_invalidation", std::string(2 << 20, 'x')}));
  REQUIRE(tiertest::eventually(
      [&] {
        const std::string m = t.metrics();
        return sample(m,
                      "tierd_messages_rejected_total{channel_pattern=\"system:*\",reason=\"not_"
                      "json\"}") == 1 &&
               sample(m,
                      "tierd_messages_rejected_total{channel_pattern=\"system:*\",reason=\"too_"
                      "large\"}") == 1;
      },
      2s));

  // A broken config on SIGHUP is refused; the daemon keeps the old one and keeps working.
  t.write("handlers:\n  - type: nosuch\n    on: [\"events:*\"]\n");
  t.proc().signal(SIGHUP);
  REQUIRE(tiertest::eventually(
      [&] { return sample(t.metrics(), "tierd_config_reloads_total{result=\"error\"}") == 1; },
      2s));
  CHECK(t.log().find("handlers[0].type (line 2): unknown handler type") != std::string::npos);
  c.run(tier::raw({"SET", keys("plain:b"), "v"}));
  c.run(tier::raw({"PUBLISH", "system:cache_invalidation", R"({"keys":["plain:b"]})"}));
  REQUIRE(tiertest::eventually(
      [&] {
        return c.run(tier::raw({"EXISTS", keys("plain:b")})).integer == 0;
      },
      2s));

  // A valid one is taken.
  t.write(t.yaml());
  t.proc().signal(SIGHUP);
  REQUIRE(tiertest::eventually(
      [&] { return sample(t.metrics(), "tierd_config_reloads_total{result=\"ok\"}") == 1; }, 2s));

  const auto t0 = Clock::now();
  const int status = t.proc().stop(SIGTERM, 5000);
  const auto took = Clock::now() - t0;
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(took < 2s);
  INFO(t.log());
  CHECK(t.log().find("stopped") != std::string::npos);
}

TEST_CASE("tierd re-subscribes and handles messages within 2 s of a Redis restart") {
  tiertest::RedisServer r;
  Tierd t(r.url(), "rs:");
  REQUIRE(tiertest::eventually([&] { return t.ready(); }, 5s));

  r.restart();
  const auto t0 = Clock::now();
  int n = 0;
  // Publishes made before the re-subscription are lost by design, so keep trying.
  const bool ok = tiertest::eventually(
      [&] {
        const std::string key = "rs:k" + std::to_string(++n);
        r.client().run(tier::raw({"SET", key, "v"}));
        r.client().run(tier::raw({"PUBLISH", "system:cache_invalidation",
                                  R"({"keys":["k)" + std::to_string(n) + "\"]}"}));
        return tiertest::eventually(
            [&] {
              return r.client().run(tier::raw({"EXISTS", key})).integer == 0;
            },
            50ms);
      },
      2s);
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
  INFO("handling again " << took.count() << " ms after the restart");
  CHECK(ok);
  REQUIRE(tiertest::eventually([&] { return t.ready(); }, 2s));
  CHECK(sample(t.metrics(), "tierd_redis_reconnects_total{link=\"subscriber\"}") >= 1);
  WARN("tierd handled an invalidation " << took.count() << " ms after redis-server restarted");
}

TEST_CASE("a frozen Redis (SIGSTOP) makes tierd not ready, and it recovers after SIGCONT") {
  tiertest::RedisServer r;
  Tierd t(r.url(), "fz:");
  REQUIRE(tiertest::eventually([&] { return t.ready(); }, 5s));

  r.pause();
  const auto t0 = Clock::now();
  // Health check every 1 s with a 1 s deadline, command deadline 1 s: not ready within ~3 s.
  const bool down = tiertest::eventually([&] { return t.get("/readyz").status == 503; }, 5s);
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
  CHECK(down);
  const HttpReply rz = t.get("/readyz");
  CHECK(rz.body.find("\"ready\":false") != std::string::npos);
  CHECK(t.get("/healthz").status == 200);  // the loop itself is fine
  CHECK(sample(t.metrics(), "tierd_redis_link_up{link=\"subscriber\"}") == 0);

  r.resume();
  const auto t1 = Clock::now();
  CHECK(tiertest::eventually([&] { return t.ready(); }, 6s));
  const auto back = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t1);
  WARN("not ready " << took.count() << " ms after SIGSTOP; ready " << back.count()
                    << " ms after SIGCONT");
}

namespace {

/// A NOTIFY_SOCKET as systemd provides it: a unix datagram socket we read messages from.
class NotifySocket {
 public:
  NotifySocket() : dir_("notify"), path_(dir_.path() + "/notify.sock") {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path_.c_str());
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  }
  ~NotifySocket() { ::close(fd_); }
  const std::string& path() const { return path_; }
  /// Everything received so far, messages separated by newlines.
  const std::string& read() {
    char buf[4096];
    ssize_t n;
    while ((n = ::recv(fd_, buf, sizeof buf, 0)) > 0) {
      seen_.append(buf, static_cast<std::size_t>(n));
      seen_ += '\n';
    }
    return seen_;
  }
  bool saw(const std::string& what) { return read().find(what) != std::string::npos; }

 private:
  tiertest::TempDir dir_;
  std::string path_;
  int fd_ = -1;
  std::string seen_;
};

}  // namespace

TEST_CASE("under systemd: READY=1, watchdog pings, RELOADING=1 on SIGHUP, STOPPING=1") {
  NotifySocket sock;
  tier::Client& c = tiertest::redis().client();
  tiertest::TestKeys keys(c, "notify");
  Tierd t(tiertest::redis().url(), keys.prefix(),
          {{"NOTIFY_SOCKET", sock.path()}, {"WATCHDOG_USEC", "200000"}});
  REQUIRE(tiertest::eventually([&] { return sock.saw("READY=1"); }, 5s));
  REQUIRE(tiertest::eventually([&] { return t.ready(); }, 5s));
  CHECK(tiertest::eventually([&] { return sock.saw("WATCHDOG=1"); }, 2s));
  CHECK(tiertest::eventually([&] { return sock.saw("STATUS=ready"); }, 2s));
  t.proc().signal(SIGHUP);
  CHECK(tiertest::eventually([&] { return sock.saw("RELOADING=1"); }, 2s));
  const int status = t.proc().stop(SIGTERM, 5000);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(sock.saw("STOPPING=1"));
}

namespace {

// Runs tierd with `argv` (single-quoted) and `env` set for it only.
tiertest::Shell run_command(const std::vector<std::string>& argv,
                            const std::vector<std::pair<std::string, std::string>>& env = {}) {
  std::string cmd;
  for (const auto& [k, v] : env) {
    cmd += k + "=" + tiertest::shell_quote(v) + " ";
  }
  for (const auto& a : argv) {
    cmd += tiertest::shell_quote(a) + " ";
  }
  return tiertest::shell(cmd);
}

}  // namespace

TEST_CASE("tierd --probe: 0 on a 200, 1 otherwise, 64 for a bad URL") {
  tier::Client& c = tiertest::redis().client();
  tiertest::TestKeys keys(c, "probe");
  Tierd t(tiertest::redis().url(), keys.prefix());
  REQUIRE(tiertest::eventually([&] { return t.ready(); }, 5s));
  const std::string base = "http://127.0.0.1:" + std::to_string(t.port());
  CHECK(run_command({TIERD_PATH, "--probe", base + "/healthz"}).status == 0);
  CHECK(run_command({TIERD_PATH, "--probe", base + "/readyz"}).status == 0);
  const auto missing = run_command({TIERD_PATH, "--probe", base + "/nosuch"});
  CHECK(missing.status == 1);
  CHECK_THAT(missing.out, Catch::Contains("404"));
  // Without a URL: /healthz where the environment says tierd listens.
  CHECK(run_command({TIERD_PATH, "--probe"},
                    {{"TIERD_HTTP_LISTEN", "0.0.0.0:" + std::to_string(t.port())}})
            .status == 0);
  const int closed = tiertest::free_port();
  const auto refused =
      run_command({TIERD_PATH, "--probe", "http://127.0.0.1:" + std::to_string(closed) + "/"});
  CHECK(refused.status == 1);
  CHECK_THAT(refused.out, Catch::Contains("refused"));
  for (const char* bad : {"https://127.0.0.1:1/", "http://localhost:9464/", "http://127.0.0.1/",
                          "http://127.0.0.1:99999/", "http://[::1/", "http://127.0.0.1:1/a b"}) {
    INFO(bad);
    const auto r = run_command({TIERD_PATH, "--probe", bad});
    CHECK(r.status == 64);
    CHECK_THAT(r.out, Catch::Contains("bad URL"));
  }
}

TEST_CASE("tierd --probe: a listener that never answers is a failure within the deadline") {
  tiertest::WebhookServer silent({-1});  // accepts, reads the request, never answers
  const auto start = Clock::now();
  const auto r = run_command(
      {TIERD_PATH, "--probe", "http://127.0.0.1:" + std::to_string(silent.port()) + "/"});
  CHECK(r.status == 1);
  CHECK_THAT(r.out, Catch::Contains("no answer within the deadline"));
  CHECK(Clock::now() - start < 10s);
}
