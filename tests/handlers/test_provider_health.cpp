// The provider_health handler on tierd Apps against the harness's Redis and a real HTTP
// server: hysteresis and one event per change, the status key, one prober among instances,
// a takeover when the leader stops, and broken config.

#include <catch2/catch.hpp>

#include <atomic>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "config/error.hpp"
#include "daemon/daemon_rig.hpp"
#include "handlers/registry.hpp"
#include "http_test_server.hpp"

namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;
using tierd_test::Daemon;
using tiertest::WebhookServer;

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
