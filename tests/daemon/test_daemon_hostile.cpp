// The real tierd binary against hostile peers: HTTP clients that reset connections with
// answers unread (SIGPIPE), Redis killing tierd's links mid-traffic, and servers that are
// not there at start (every degraded state logged with its cause, and when it ends).
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <csignal>
#include <fstream>
#include <sstream>
#include <thread>

#include "support/helpers.hpp"
#include "support/servers.hpp"
#include "tier/op.hpp"
#include "tierd_process.hpp"

using namespace std::chrono_literals;
using tiertest::sample;
using tiertest::Tierd;

namespace {

/// Pipelines `count` requests, reads a little, then closes with a RST (SO_LINGER 0) while
/// the daemon still has answers to write.
void pipeline_and_reset(int port, int count) {
  const int fd = tiertest::connect_loopback(port);
  REQUIRE(fd >= 0);
  std::string batch;
  for (int i = 0; i < count; ++i) {
    batch += "GET /metrics HTTP/1.1\r\n\r\n";
  }
  // The daemon may stop reading while its answers pile up: a short send is fine.
  (void)::send(fd, batch.data(), batch.size(), MSG_NOSIGNAL);
  char buf[1000];
  (void)::recv(fd, buf, sizeof buf, 0);
  linger l{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  ::close(fd);
}

std::string describe_exit(tiertest::Process& p) {
  if (p.running()) {
    return "running";
  }
  const int st = p.status();
  std::ostringstream out;
  if (WIFSIGNALED(st)) {
    out << "killed by signal " << WTERMSIG(st);
  } else {
    out << "exited with " << WEXITSTATUS(st);
  }
  return out.str();
}

/// True when the process ignores SIGPIPE (bit 13 of SigIgn in /proc/PID/status).
bool ignores_sigpipe(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("SigIgn:", 0) == 0) {
      const unsigned long long mask = std::stoull(line.substr(7), nullptr, 16);
      return (mask & (1ULL << (SIGPIPE - 1))) != 0;
    }
  }
  return false;
}

int count_of(const std::string& text, const std::string& what) {
  int n = 0;
  for (auto pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) {
    ++n;
  }
  return n;
}

/// CLIENT KILL ID for each connection whose name starts with `prefix`; returns how many.
int kill_clients(tier::Client& c, const std::string& prefix) {
  const std::string list = c.run(tier::raw({"CLIENT", "LIST"})).str;
  std::istringstream in(list);
  std::string line;
  int killed = 0;
  while (std::getline(in, line)) {
    const auto name = line.find(" name=" + prefix);
    const auto id = line.find("id=");
    if (name == std::string::npos || id != 0) {
      continue;
    }
    const std::string client_id = line.substr(3, line.find(' ') - 3);
    if (c.try_run(tier::raw({"CLIENT", "KILL", "ID", client_id})).ok()) {
      ++killed;
    }
  }
  return killed;
}

}  // namespace

TEST_CASE("tierd survives HTTP clients that reset the connection with answers unread") {
  tiertest::RedisServer r;
  Tierd t(r.url(), "rst:");
  REQUIRE(tiertest::eventually([&] { return t.ready(); }, 5s));
  // Whether a reset lands between two writes is a matter of timing; the disposition is not.
  CHECK(ignores_sigpipe(t.proc().pid()));
  for (int round = 0; round < 10; ++round) {
    pipeline_and_reset(t.port(), 2000);
    INFO("round " << round << ": tierd " << describe_exit(t.proc()));
    REQUIRE(t.proc().running());
  }
  INFO("tierd " << describe_exit(t.proc()));
  CHECK(t.get("/healthz").status == 200);
  const int status = t.proc().stop(SIGTERM, 5000);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("tierd survives Redis killing its links (CLIENT KILL) during a publish flood") {
  tiertest::RedisServer r;
  Tierd t(r.url(), "kill:");
  REQUIRE(tiertest::eventually([&] { return t.ready(); }, 5s));

  std::atomic<bool> stop{false};
  std::thread flood([&] {
    tier::Client pub(r.url());
    std::string keys = R"({"keys":[)";
    for (int i = 0; i < 200; ++i) {
      keys += (i == 0 ? "\"" : ",\"") + std::string("key:") + std::to_string(i) + "\"";
    }
    keys += "]}";
    while (!stop) {
      // Each message makes the invalidation handler write a 200-key UNLINK on the command
      // link, so kills land mid-read and mid-write.
      (void)pub.try_run(tier::raw({"PUBLISH", "system:cache_invalidation", keys}));
    }
  });
  tier::Client admin(r.url());
  int killed = 0;
  for (int round = 0; round < 20 && t.proc().running(); ++round) {
    // Each kill hits live links: wait until both are back (reconnected and named).
    REQUIRE(tiertest::eventually(
        [&] {
          const std::string list = admin.run(tier::raw({"CLIENT", "LIST"})).str;
          return list.find(" name=tierd ") != std::string::npos &&
                 list.find(" name=tierd:sub ") != std::string::npos;
        },
        5s));
    killed += kill_clients(admin, "tierd");
  }
  stop = true;
  flood.join();
  INFO("tierd " << describe_exit(t.proc()));
  REQUIRE(t.proc().running());
  CHECK(killed >= 40);
  REQUIRE(tiertest::eventually([&] { return t.ready(); }, 5s));
  // Still doing its work.
  r.client().run(tier::raw({"SET", "kill:after", "v"}));
  REQUIRE(tiertest::eventually(
      [&] {
        r.client().run(
            tier::raw({"PUBLISH", "system:cache_invalidation", R"({"keys":["after"]})"}));
        return r.client().run(tier::raw({"EXISTS", "kill:after"})).integer == 0;
      },
      3s));
  CHECK(sample(t.metrics(), "tierd_redis_reconnects_total{link=\"subscriber\"}") >= 1);
  CHECK(t.proc().stop(SIGTERM, 5000) == 0);
}

TEST_CASE("tierd started without Redis says so at once, with the cause, and when it comes") {
  tiertest::RedisServer r;
  r.stop();  // its port is known and nobody listens there
  Tierd t(r.url(), "dg:");
  // Refused: logged once per link however many retries follow.
  REQUIRE(tiertest::eventually(
      [&] {
        return sample(t.metrics(),
                      "tierd_link_failures_total{link=\"commands\",cause=\"refused\"}") >= 3;
      },
      10s));
  const std::string log = t.log();
  INFO(log);
  CHECK(count_of(log, "redis commands: down (refused)") == 1);
  CHECK(count_of(log, "redis subscriber: down (refused)") == 1);
  CHECK(log.find("Connection refused") != std::string::npos);
  const auto rz = t.get("/readyz");
  CHECK(rz.status == 503);
  CHECK(rz.body.find(R"("redis_commands_error":"refused: )") != std::string::npos);

  r.start();
  REQUIRE(tiertest::eventually([&] { return t.ready(); }, 10s));
  REQUIRE(tiertest::eventually(
      [&] { return t.log().find("redis commands: ready after") != std::string::npos; }, 2s));
  CHECK(t.get("/readyz").body.find("_error") == std::string::npos);
}

TEST_CASE("tierd names the cause of a degraded start: name, password, a frozen server") {
  SECTION("a host name that does not resolve") {
    Tierd t("redis://no-such-host.invalid:6379", "dg:");
    REQUIRE(tiertest::eventually(
        [&] {
          return t.log().find("redis commands: down (name not resolved)") != std::string::npos;
        },
        10s));
    CHECK(t.get("/readyz").body.find("name not resolved") != std::string::npos);
  }
  SECTION("a password Redis refuses") {
    tiertest::RedisOptions o;
    o.password = "s3cret-for-test";
    tiertest::RedisServer r(o);
    Tierd t(r.url(), "dg:", {{"TIERD_REDIS_PASSWORD", "wrong-password"}});
    REQUIRE(tiertest::eventually(
        [&] { return t.log().find("redis commands: down (auth refused)") != std::string::npos; },
        10s));
    CHECK(t.log().find("wrong-password") == std::string::npos);  // never logged
    CHECK(t.get("/readyz").body.find("wrong-password") == std::string::npos);
  }
  SECTION("a server that accepts but never answers") {
    tiertest::RedisServer r;
    r.pause();
    Tierd t(r.url(), "dg:");
    REQUIRE(tiertest::eventually(
        [&] { return t.log().find("redis commands: down (timeout)") != std::string::npos; }, 10s));
    r.resume();
    CHECK(tiertest::eventually([&] { return t.ready(); }, 10s));
  }
}
