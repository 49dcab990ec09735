// The quota_alerts and notify handlers on a tierd App against the harness's real Redis, and
// webhooks against a real HTTP server the test runs: notifications once across two
// instances, retries on 5xx, a final 4xx, a hanging server that times out while /healthz
// still answers at once, and broken config.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <cstdlib>
#include <future>
#include <mutex>
#include <thread>

#include "config/error.hpp"
#include "daemon/daemon_rig.hpp"
#include "daemon/tierd_process.hpp"
#include "handlers/quota_alerts/quota_alerts.hpp"
#include "handlers/registry.hpp"
#include "http_test_server.hpp"

namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;
using tierd_test::Daemon;
using tiertest::WebhookServer;

Json warning(const std::string& user, double threshold) {
  return {{"id", "quota:" + user + ":api_calls:2026-11-29:" + std::to_string(threshold)},
          {"user_id", user},
          {"metric", "api_calls"},
          {"period", "daily"},
          {"period_key", "2026-11-29"},
          {"used", 80},
          {"limit", 100},
          {"ratio", 0.8},
          {"threshold", threshold}};
}

double outcome(Daemon& d, const char* sink, const char* outcome) {
  return d.metric("tierd_notify_deliveries_total",
                  {{"handler", "hooks"}, {"sink", sink}, {"outcome", outcome}});
}

std::string unique_user(const char* tag) {
  return std::string(tag) + "-" + std::to_string(::getpid());
}

}  // namespace

TEST_CASE("quota_alerts: one notification per warning across two tierd instances") {
  const std::string handlers =
      "handlers:\n  - type: quota_alerts\n    name: alerts\n    on: [\"system:quota_warning\"]\n";
  Daemon a(handlers, "alerts");
  auto b = a.another();  // a second instance on the same loop and namespace
  REQUIRE(a.loop.run_until([&] { return b->readiness().ready; }, 5s));

  const std::string user = unique_user("qa");
  tier::Client listener(tiertest::redis().url());
  auto sub = listener.subscribe({"notifications:user:" + user, "notifications:admin"}, {});

  auto events = [&](const char* result) {
    const tier::metrics::Labels l{{"handler", "alerts"}, {"result", result}};
    return a.metric("tierd_handler_events_total", l) +
           b->metrics().value("tierd_handler_events_total", l);
  };
  a.publish("system:quota_warning", warning(user, 0.8).dump());
  a.publish("system:quota_warning", warning(user, 1.0).dump());
  REQUIRE(a.loop.run_until([&] { return events("ok") == 2 && events("duplicate") == 2; }, 5s));

  std::vector<std::pair<std::string, Json>> got;
  while (auto m = sub.next(200ms)) {
    got.emplace_back(m->channel, Json::parse(m->payload));
  }
  // 0.8: the user only; 1.0: the user and the admins. Each once, though both instances got
  // both warnings.
  REQUIRE(got.size() == 3);
  int user_notes = 0;
  int admin_notes = 0;
  for (const auto& [channel, note] : got) {
    (channel == "notifications:admin" ? admin_notes : user_notes)++;
    CHECK(note["kind"] == "quota_warning");
    CHECK(note["data"]["user_id"] == user);
    CHECK(note.contains("title"));
    CHECK(note["body"].get<std::string>().find("daily api_calls quota") != std::string::npos);
    CHECK(note["ts"].is_number_integer());
  }
  CHECK(user_notes == 2);
  CHECK(admin_notes == 1);

  // A warning without its fields is refused by the core; one with a wrong type by the handler.
  Json no_user = warning(user, 0.9);
  no_user.erase("user_id");
  a.publish("system:quota_warning", no_user.dump());
  Json bad_type = warning(user, 0.95);
  bad_type["user_id"] = 42;
  a.publish("system:quota_warning", bad_type.dump());
  REQUIRE(a.loop.run_until([&] { return events("fail") >= 1; }, 5s));
  CHECK(a.metric("tierd_quota_alerts_rejected_total", {{"handler", "alerts"}}) +
            b->metrics().value("tierd_quota_alerts_rejected_total", {{"handler", "alerts"}}) >=
        1);
  CHECK_FALSE(sub.next(100ms));

  b->shutdown();
  a.loop.run_until([&] { return b->finished(); }, 5s);
}

TEST_CASE("quota_alerts: the notification names the usage") {
  Json note = tierd::quota_notification(warning("u1", 1.0), 1764417600000);
  CHECK(note["id"] == warning("u1", 1.0)["id"]);
  CHECK(note["title"] == "Quota warning: api_calls");
  CHECK(note["body"] == "You have used 80% of your daily api_calls quota (80 of 100, 2026-11-29).");
  CHECK(note["ts"] == 1764417600000);
}

TEST_CASE("notify: webhooks retry 5xx, give up on 4xx, carry secrets from the environment") {
  const tierd::EnvLookup env = [](const char* name) -> std::optional<std::string> {
    if (std::string_view(name) == "TIERD_TEST_WEBHOOK_TOKEN") {
      return "s3cret";
    }
    return std::nullopt;
  };
  WebhookServer flaky({500, 503, 200});
  WebhookServer gone({404});
  const std::string user = unique_user("nt");
  Daemon d("handlers:\n  - type: notify\n    name: hooks\n    on: [\"notifications:user:" + user +
               "\"]\n    sinks:\n"
               "      - {name: flaky, type: webhook, url: \"http://127.0.0.1:" +
               std::to_string(flaky.port()) +
               "/hook\", retry_backoff_ms: 10, max_attempts: 5,\n"
               "         headers: {Authorization: \"Bearer ${TIERD_TEST_WEBHOOK_TOKEN}\"}}\n"
               "      - {name: gone, type: webhook, url: \"http://127.0.0.1:" +
               std::to_string(gone.port()) +
               "/hook\", retry_backoff_ms: 10}\n"
               "      - {name: journal, type: log}\n",
           "notify", "", "", tiertest::redis(), "", env);
  const std::string message = R"({"id":"n1","kind":"info","title":"hello","body":"b","ts":1})";
  d.publish("notifications:user:" + user, message);
  REQUIRE(d.loop.run_until(
      [&] {
        return outcome(d, "flaky", "delivered") == 1 && outcome(d, "gone", "failed") == 1 &&
               outcome(d, "journal", "delivered") == 1;
      },
      10s));
  CHECK(outcome(d, "flaky", "retried") == 2);
  CHECK(outcome(d, "gone", "retried") == 0);  // 404 is final
  const auto got = flaky.requests();
  REQUIRE(got.size() == 3);
  for (const auto& r : got) {
    CHECK(Json::parse(r.body) == Json::parse(message));
    CHECK(r.head.starts_with("POST /hook HTTP/1.1"));
    CHECK(r.head.find("Authorization: Bearer s3cret") != std::string::npos);
    CHECK(r.head.find("Content-Type: application/json") != std::string::npos);
  }
  CHECK(gone.requests().size() == 1);
  // A failing sink never makes tierd unready.
  CHECK(d.app->readiness().ready);
}

TEST_CASE("notify: a hanging webhook times out while /healthz answers at once") {
  WebhookServer hangs({-1});
  const std::string user = unique_user("hang");
  Daemon d("handlers:\n  - type: notify\n    name: hooks\n    on: [\"notifications:user:" + user +
               "\"]\n    sinks:\n"
               "      - {name: slow, type: webhook, url: \"http://127.0.0.1:" +
               std::to_string(hangs.port()) + "/\", timeout_ms: 500, max_attempts: 1}\n",
           "notify-hang");
  d.publish("notifications:user:" + user, R"({"id":"n2"})");
  REQUIRE(d.loop.run_until([&] { return hangs.requests().size() == 1; }, 5s));
  // While the request hangs, /healthz is asked from another thread and the loop keeps
  // running: the answer must come at once.
  const int port = d.app->http_port();
  auto probe = std::async(std::launch::async, [port] {
    const auto start = std::chrono::steady_clock::now();
    auto r = tiertest::http_get(port, "/healthz");
    return std::make_pair(r.status, std::chrono::steady_clock::now() - start);
  });
  REQUIRE(d.loop.run_until([&] { return probe.wait_for(0s) == std::future_status::ready; }, 5s));
  const auto [status, took] = probe.get();
  CHECK(status == 200);
  CHECK(took < 50ms);  // loopback, the loop idle but for the hanging transfer
  REQUIRE(d.loop.run_until([&] { return outcome(d, "slow", "failed") == 1; }, 5s));
}

TEST_CASE("notify and quota_alerts: broken config is refused with the YAML path") {
  auto error = [](const std::string& handlers) {
    try {
      auto c = tierd::parse_config("redis:\n  url: redis://127.0.0.1:1\n" + handlers, "t.yaml",
                                   tierd_test::kNoEnv);
      tierd::resolve(c, tierd_test::kNoEnv);
    } catch (const tierd::ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  const std::string head = "handlers:\n  - type: notify\n    on: [\"notifications:*\"]\n";
  CHECK_THAT(error(head), Catch::Contains("handlers[0].sinks") &&
                              Catch::Contains("expected a non-empty list of sinks"));
  CHECK_THAT(error(head + "    sinks:\n      - {name: a, type: pager}\n"),
             Catch::Contains("handlers[0].sinks[0].type") && Catch::Contains("unknown sink type"));
  CHECK_THAT(error(head + "    sinks:\n      - {name: a, type: webhook, url: \"ftp://x\"}\n"),
             Catch::Contains("handlers[0].sinks[0].url"));
  CHECK_THAT(
      error(head + "    sinks:\n      - {name: a, type: webhook, url: \"http://x\", headers: "
                   "{X-Token: \"${TIERD_TEST_SURELY_UNSET}\"}}\n"),
      Catch::Contains("handlers[0].sinks[0].headers.X-Token") &&
          Catch::Contains("TIERD_TEST_SURELY_UNSET"));
  CHECK_THAT(error(head + "    sinks:\n      - {name: a, type: log, url: \"http://x\"}\n"),
             Catch::Contains("only a webhook sink"));
  CHECK_THAT(error(head + "    sinks:\n      - {name: a, type: webhook, url: \"http://x\", "
                          "max_attempts: 0}\n"),
             Catch::Contains("handlers[0].sinks[0].max_attempts"));
  CHECK_THAT(
      error("handlers:\n  - type: quota_alerts\n    on: [\"system:quota_warning\"]\n    "
            "admin_threshold: lots\n"),
      Catch::Contains("handlers[0].admin_threshold") && Catch::Contains("expected a number"));
  CHECK(error(head + "    sinks:\n      - {name: a, type: log}\n") == "accepted");
}
