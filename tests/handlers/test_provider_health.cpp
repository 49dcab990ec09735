// The provider_health handler on tierd Apps and in the real tierd binary, against the
// harness's Redis and a real HTTP server: hysteresis and one event per change, the status
// key, one prober among instances, a takeover when the leader stops or is SIGKILLed, a
// hanging provider that only times out, and broken config.

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "config/error.hpp"
#include "daemon/daemon_rig.hpp"
#include "daemon/tierd_process.hpp"
#include "handlers/registry.hpp"
#include "http_test_server.hpp"

namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;
using tierd_test::Daemon;
using tiertest::WebhookServer;

using Clock = std::chrono::steady_clock;

/// One provider_health handler entry (YAML list item) for the real binary.
std::string process_handler(int port, const std::string& name, int lease_ms, int timeout_ms) {
  return "  - type: provider_health\n    name: health\n    on: [\"system:health_check\"]\n"
         "    leader_lease_ms: " +
         std::to_string(lease_ms) + "\n    providers:\n      - {name: " + name +
         ", url: \"http://127.0.0.1:" + std::to_string(port) +
         "/health\", interval_s: 1, timeout_ms: " + std::to_string(timeout_ms) + "}\n";
}

double leader(const tiertest::Tierd& t) {
  return tiertest::sample(t.metrics(), "tierd_provider_health_leader{handler=\"health\"}");
}

std::string handlers(int port, const std::string& name) {
  return "handlers:\n  - type: provider_health\n    name: health\n    on: "
         "[\"system:health_check\"]\n"
         "    leader_lease_ms: 600\n    providers:\n      - {name: " +
         name + ", url: \"http://127.0.0.1:" + std::to_string(port) +
         "/health\", interval_s: 3600, unhealthy_after: 3, healthy_after: 2, timeout_ms: 2000}\n";
}

double probes(tierd::App& app, const std::string& provider) {
  double n = 0;
  for (const char* o : {"ok", "failure", "degraded"}) {
    n += app.metrics().value("tierd_provider_probes_total",
                             {{"provider", provider}, {"outcome", o}});
  }
  return n;
}

}  // namespace

TEST_CASE("provider_health: 200 -> 500 -> 200 gives one event per change, after the counts") {
  WebhookServer server({200, 200, 500, 500, 500, 200, 200});
  const std::string name = "prov-" + std::to_string(::getpid());
  tier::Client listener(tiertest::redis().url());
  auto events = listener.subscribe({"events:provider_health_changed"}, {});
  Daemon d(handlers(server.port(), name), "health");
  // The leader probes once at once; each system:health_check probes again.
  REQUIRE(d.loop.run_until([&] { return probes(*d.app, name) == 1; }, 5s));
  for (int i = 2; i <= 7; ++i) {
    d.publish("system:health_check", "{\"provider\":\"" + name + "\"}");
    REQUIRE(d.loop.run_until([&] { return probes(*d.app, name) == i; }, 5s));
  }
  // Read on a thread while the loop runs: the last event is published after the probe.
  std::vector<Json> got;
  std::mutex m;
  std::atomic<bool> reading{true};
  std::thread reader([&] {
    while (reading) {
      if (auto msg = events.next(50ms)) {
        const Json e = Json::parse(msg->payload);
        std::lock_guard lock(m);
        if (e["provider"] == name) {
          got.push_back(e);
        }
      }
    }
  });
  d.loop.run_until(
      [&] {
        std::lock_guard lock(m);
        return got.size() >= 3;
      },
      5s);
  reading = false;
  reader.join();
  INFO(Json(got).dump());
  INFO(
      "ok " << d.metric("tierd_provider_probes_total", {{"provider", name}, {"outcome", "ok"}})
            << " failures "
            << d.metric("tierd_provider_probes_total", {{"provider", name}, {"outcome", "failure"}})
            << " requests " << server.requests().size());
  REQUIRE(got.size() == 3);
  CHECK(got[0]["from"] == "unknown");
  CHECK(got[0]["to"] == "healthy");
  CHECK(got[1]["from"] == "healthy");
  CHECK(got[1]["to"] == "unhealthy");  // after the third failure, not the first
  CHECK(got[1]["error"] == "HTTP 500");
  CHECK(got[2]["to"] == "healthy");  // after the second success
  for (const char* f : {"id", "latency_ms", "checked_at"}) {
    CHECK(got[0].contains(f));
  }
  const Json status = Json::parse(
      d.client.run(tier::raw({"GET", d.keys("provider:" + name + ":health_status")})).str);
  CHECK(status["status"] == "healthy");
  CHECK(status["consecutive_failures"] == 0);
  CHECK(d.client.run(tier::raw({"TTL", d.keys("provider:" + name + ":health_status")})).integer >
        3600);
  CHECK(d.metric("tierd_provider_up", {{"provider", name}}) == 1);
}

TEST_CASE("provider_health: one of two instances probes; the other takes over when it stops") {
  WebhookServer server({});
  const std::string name = "lead-" + std::to_string(::getpid());
  Daemon a(handlers(server.port(), name), "health-2");
  auto b = a.another();
  auto leaders = [&] {
    const tier::metrics::Labels l{{"handler", "health"}};
    return a.metric("tierd_provider_health_leader", l) +
           b->metrics().value("tierd_provider_health_leader", l);
  };
  REQUIRE(a.loop.run_until([&] { return leaders() == 1; }, 5s));
  const bool a_leads = a.metric("tierd_provider_health_leader", {{"handler", "health"}}) == 1;
  // The leader's first probe has completed (a check meanwhile would find it in flight).
  REQUIRE(a.loop.run_until([&] { return probes(*a.app, name) + probes(*b, name) == 1; }, 5s));
  CHECK(server.requests().size() == 1);
  // Both instances get every system:health_check; only the leader probes (one probe of a
  // provider at a time, so the checks go one after the other).
  for (int i = 2; i <= 4; ++i) {
    a.publish("system:health_check", "{}");
    REQUIRE(a.loop.run_until([&] { return probes(*a.app, name) + probes(*b, name) == i; }, 5s));
  }
  CHECK(server.requests().size() == 4);
  CHECK(leaders() == 1);

  // The leader stops (steps down); the other leads within a lease and probes.
  if (a_leads) {
    a.app->shutdown();
    REQUIRE(a.loop.run_until([&] { return a.app->finished(); }, 5s));
    REQUIRE(a.loop.run_until(
        [&] {
          return b->metrics().value("tierd_provider_health_leader", {{"handler", "health"}}) == 1;
        },
        5s));
  } else {
    b->shutdown();
    REQUIRE(a.loop.run_until([&] { return b->finished(); }, 5s));
    REQUIRE(a.loop.run_until(
        [&] {
          return a.metric("tierd_provider_health_leader", {{"handler", "health"}}) == 1;
        },
        5s));
  }
  REQUIRE(a.loop.run_until([&] { return server.requests().size() == 5; }, 5s));
  if (!b->finished()) {
    b->shutdown();
    a.loop.run_until([&] { return b->finished(); }, 5s);
  }
}

TEST_CASE("provider_health: a HEAD probe is sent as HEAD and counts its status") {
  WebhookServer server({204});
  const std::string name = "head-" + std::to_string(::getpid());
  std::string yaml = handlers(server.port(), name);
  yaml.replace(yaml.find("interval_s:"), 0, "method: HEAD, ");
  Daemon d(yaml, "health-head");
  REQUIRE(d.loop.run_until([&] { return probes(*d.app, name) == 1; }, 5s));
  REQUIRE(server.requests().size() == 1);
  CHECK(server.requests()[0].head.rfind("HEAD /health HTTP/1.1", 0) == 0);
  CHECK(d.metric("tierd_provider_probes_total", {{"provider", name}, {"outcome", "ok"}}) == 1);
}

TEST_CASE("provider_health: rate-limit response headers go to the rate_limit_status key") {
  WebhookServer server({200, 200});
  server.headers(
      "X-RateLimit-Remaining: 17\r\nx-ratelimit-reset: 30s\r\nRetry-After: 4\r\n"
      "X-Other: no\r\n");
  const std::string name = "rl-" + std::to_string(::getpid());
  Daemon d(handlers(server.port(), name), "health-rl");
  const std::string key = d.keys("provider:" + name + ":rate_limit_status");
  REQUIRE(d.loop.run_until([&] { return probes(*d.app, name) == 1; }, 5s));
  REQUIRE(d.loop.run_until(
      [&] {
        return d.client.run(tier::raw({"EXISTS", key})).integer == 1;
      },
      5s));
  const Json limits = Json::parse(d.client.run(tier::raw({"GET", key})).str);
  CHECK(limits["x-ratelimit-remaining"] == "17");
  CHECK(limits["x-ratelimit-reset"] == "30s");
  CHECK(limits["retry-after"] == "4");
  CHECK_FALSE(limits.contains("x-other"));
  CHECK(limits.contains("checked_at"));
  CHECK(d.client.run(tier::raw({"TTL", key})).integer > 0);
}

TEST_CASE("provider_health: broken config is refused with the YAML path") {
  auto error = [](const std::string& providers) {
    try {
      auto c = tierd::parse_config(
          "redis:\n  url: redis://127.0.0.1:1\nhandlers:\n  - type: provider_health\n"
          "    on: [\"system:health_check\"]\n" +
              providers,
          "t.yaml", tierd_test::kNoEnv);
      tierd::resolve(c, tierd_test::kNoEnv);
    } catch (const tierd::ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  CHECK(error("    providers:\n      - {name: a, url: \"http://x/h\"}\n") == "accepted");
  CHECK_THAT(error("    providers: []\n"), Catch::Contains("handlers[0].providers"));
  CHECK_THAT(error("    providers:\n      - {name: a, url: \"ftp://x\"}\n"),
             Catch::Contains("handlers[0].providers[0].url"));
  CHECK_THAT(error("    providers:\n      - {name: a, url: \"http://x\", method: DELETE}\n"),
             Catch::Contains("handlers[0].providers[0].method"));
  CHECK_THAT(error("    providers:\n      - {name: a, url: \"http://x\", expect_status: [700]}\n"),
             Catch::Contains("handlers[0].providers[0].expect_status[0]"));
  CHECK_THAT(error("    providers:\n      - {name: a, url: \"http://x\", headers: {Authorization: "
                   "\"Bearer ${PROVIDER_KEY}\"}}\n"),
             Catch::Contains("PROVIDER_KEY"));
}

TEST_CASE(
    "provider_health in tierd: a hanging provider only times out; /healthz answers meanwhile") {
  WebhookServer server({-1});  // accepts, reads the request, never answers
  tier::Client& c = tiertest::redis().client();
  tiertest::TestKeys keys(c, "hang");
  const std::string name = "hang-" + std::to_string(::getpid());
  tiertest::Tierd t(tiertest::redis().url(), keys.prefix(), {},
                    process_handler(server.port(), name, 3000, 1500));
  REQUIRE(tiertest::eventually([&] { return server.requests().size() == 1; }, 10s));
  // The probe is in flight for 1.5 s: the loop keeps serving.
  std::vector<double> took;
  const auto status_key = keys("provider:" + name + ":health_status");
  while (took.size() < 40 && c.run(tier::raw({"EXISTS", status_key})).integer == 0) {
    const auto start = Clock::now();
    const auto r = t.get("/healthz");
    took.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    REQUIRE(r.status == 200);
  }
  REQUIRE(took.size() >= 10);
  std::sort(took.begin(), took.end());
  WARN("healthz ms: median " << took[took.size() / 2] << ", max " << took.back());
  CHECK(took[took.size() / 2] < 5.0);
  CHECK(took.back() < 500.0);  // a loop blocked on the probe would take the whole 1.5 s
  // It ends as a timeout, recorded as a failure.
  REQUIRE(tiertest::eventually(
      [&] {
        return c.run(tier::raw({"EXISTS", status_key})).integer == 1;
      },
      10s));
  const Json status = Json::parse(c.run(tier::raw({"GET", status_key})).str);
  CHECK(status["consecutive_failures"] == 1);
  CHECK_THAT(status["last_error"].get<std::string>(), Catch::Contains("timed out") ||
                                                          Catch::Contains("timeout") ||
                                                          Catch::Contains("Timeout"));
}

TEST_CASE(
    "provider_health in tierd: after a SIGKILL of the leader the other probes within one lease") {
  constexpr int lease_ms = 1500;
  WebhookServer server({});
  tier::Client& c = tiertest::redis().client();
  tiertest::TestKeys keys(c, "kill");
  const std::string name = "kill-" + std::to_string(::getpid());
  const std::string h = process_handler(server.port(), name, lease_ms, 500);
  tiertest::Tierd a(tiertest::redis().url(), keys.prefix(), {}, h);
  tiertest::Tierd b(tiertest::redis().url(), keys.prefix(), {}, h);
  REQUIRE(tiertest::eventually([&] { return leader(a) + leader(b) == 1; }, 10s));
  tiertest::Tierd& lead = leader(a) == 1 ? a : b;
  tiertest::Tierd& other = &lead == &a ? b : a;
  // Probes at 1 s intervals, one prober between the two: about one request a second.
  const auto before = server.requests().size();
  const auto window = Clock::now();
  REQUIRE(tiertest::eventually([&] { return server.requests().size() >= before + 3; }, 10s));
  const double per_s = static_cast<double>(server.requests().size() - before) /
                       std::chrono::duration<double>(Clock::now() - window).count();
  WARN("probes per second with two instances: " << per_s);
  CHECK(per_s < 1.6);
  CHECK(leader(other) == 0);

  lead.proc().signal(SIGKILL);
  const auto killed = Clock::now();
  const auto seen = server.requests().size();
  REQUIRE(tiertest::eventually([&] { return server.requests().size() > seen; }, 10s));
  const auto takeover =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - killed);
  WARN("first probe by the new leader " << takeover.count() << " ms after the kill");
  // Free at most one lease after the dead leader's last renewal; the new leader probes at once.
  CHECK(takeover.count() < lease_ms + 500);
  CHECK(leader(other) == 1);
}
