// The warm handler on a tierd App against the harness's real Redis and PostgreSQL: keys
// filled from query rows on an event, at start, on an interval and on system:cache_warm;
// bad input refused and counted; a hanging query never delays an invalidation.

#include <catch2/catch.hpp>

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <iterator>

#include <nlohmann/json.hpp>

#include "config/error.hpp"
#include "daemon/daemon_rig.hpp"
#include "handlers/registry.hpp"

namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;
using tierd_test::Daemon;

double runs(Daemon& d, const char* warmer, const char* result) {
  return d.metric("tierd_warm_runs_total",
                  {{"handler", "warm"}, {"warmer", warmer}, {"result", result}});
}

std::optional<Json> value(Daemon& d, const std::string& key) {
  auto r = d.client.run(tier::raw({"GET", d.keys(key)}));
  if (!r.is_string()) {
    return std::nullopt;
  }
  return Json::parse(r.str);
}

const char* kHandlers = R"(
handlers:
  - type: invalidate
    name: invalidate
    on: ["system:cache_invalidation"]
  - type: warm
    name: warm
    on: ["events:version_promoted", "events:warm_test_*", "system:cache_warm"]
    query_timeout_ms: 20000
    warmers:
      - name: baseline
        query: "SELECT metric, value FROM warm_metrics WHERE project_id = $1 ORDER BY metric"
        params: [project_id]
        key: "project:{project_id}:baseline_metrics"
        tier: project
        shape: rows
        on: ["events:version_promoted"]
      - name: first
        query: "SELECT metric, value FROM warm_metrics WHERE project_id = $1 ORDER BY value DESC LIMIT 1"
        params: [project_id]
        key: "project:{project_id}:top_metric"
        shape: row
        on_empty: delete
        ttl_s: 120
        on: ["events:version_promoted"]
      - name: counts
        query: "SELECT project_id, count(*) AS n FROM warm_metrics GROUP BY project_id"
        key: "project:{project_id}:metric_count"
        shape: per_row
        at_start: true
      - name: tick
        query: "SELECT count(*) AS n FROM warm_metrics"
        key: "global:warm:rows"
        interval_s: 1
      - name: slow
        query: "SELECT pg_sleep(3) AS slept"
        key: "global:warm:slow"
        on: ["events:warm_test_slow"]
      - name: broken
        query: "SELECT no_such_column FROM warm_metrics"
        key: "global:warm:broken"
        on: ["events:warm_test_broken"]
)";

}  // namespace

TEST_CASE("warm: keys from PostgreSQL on an event, at start, on an interval and on demand") {
  auto& pg = tiertest::postgres();
  pg.query(
      "DROP TABLE IF EXISTS warm_metrics; CREATE TABLE warm_metrics (project_id text, metric "
      "text, value float8); INSERT INTO warm_metrics VALUES ('p1', 'latency', 12.5), ('p1', "
      "'errors', 3), ('p2', 'latency', 40)");
  Daemon d(kHandlers, "warm", "", pg.conninfo());

  // At start: one key per row of the per_row warmer.
  REQUIRE(d.until([&] { return value(d, "project:p2:metric_count").has_value(); }));
  CHECK((*value(d, "project:p1:metric_count"))["n"] == 2);
  // On an interval.
  REQUIRE(d.loop.run_until([&] { return runs(d, "tick", "ok") >= 2; }, 5s));
  CHECK((*value(d, "global:warm:rows"))["n"] == 3);

  // On an event: the rows as typed JSON, with the tier's TTL; the first row of another.
  d.publish("events:version_promoted", R"({"project_id":"p1","version":3})");
  REQUIRE(d.until([&] { return value(d, "project:p1:baseline_metrics").has_value(); }));
  CHECK(*value(d, "project:p1:baseline_metrics") ==
        Json::parse(R"([{"metric":"errors","value":3},{"metric":"latency","value":12.5}])"));
  CHECK(d.client.run(tier::raw({"TTL", d.keys("project:p1:baseline_metrics")})).integer > 3500);
  REQUIRE(d.until([&] {
    return d.metric("tierd_cache_events_total", {{"tier", "project"}, {"event", "load"}}) >= 1;
  }));
  REQUIRE(d.until([&] { return value(d, "project:p1:top_metric").has_value(); }));
  CHECK((*value(d, "project:p1:top_metric"))["metric"] == "latency");
  CHECK(d.client.run(tier::raw({"TTL", d.keys("project:p1:top_metric")})).integer <= 120);

  // On demand, with params; on_empty: delete removes a key whose query found nothing.
  d.client.run(tier::raw({"SET", d.keys("project:p9:top_metric"), "\"stale\""}));
  d.publish("system:cache_warm", R"({"warmer":"first","params":{"project_id":"p9"}})");
  REQUIRE(d.until([&] { return !value(d, "project:p9:top_metric").has_value(); }));
  d.publish("system:cache_warm", R"({"warmer":"baseline","params":{"project_id":"p2"}})");
  REQUIRE(d.until([&] { return value(d, "project:p2:baseline_metrics").has_value(); }));
  // Counted when the write is confirmed (the key can be seen a moment before).
  CHECK(d.until([&] {
    return d.metric("tierd_warm_keys_total", {{"handler", "warm"}, {"warmer", "baseline"}}) == 2;
  }));
}

TEST_CASE("warm: bad input and failing queries are refused or counted, naming the warmer") {
  auto& pg = tiertest::postgres();
  pg.query(
      "DROP TABLE IF EXISTS warm_metrics; CREATE TABLE warm_metrics (project_id text, metric "
      "text, value float8)");
  Daemon d(kHandlers, "warm-bad", "", pg.conninfo());
  d.publish("events:version_promoted", R"({"version":3})");           // no project_id
  d.publish("events:version_promoted", R"({"project_id":{"a":1}})");  // wrong type
  d.publish("events:version_promoted", R"({"project_id":"p*"})");     // glob in a key
  d.publish("system:cache_warm", R"({"warmer":"nope"})");             // unknown warmer
  d.publish("system:cache_warm", R"({"params":{}})");                 // no warmer
  d.publish("events:warm_test_broken", R"({})");                      // query error
  REQUIRE(d.until([&] {
    return runs(d, "baseline", "rejected") + runs(d, "first", "rejected") >= 5 &&
           runs(d, "-", "rejected") >= 2 && runs(d, "broken", "error") >= 1;
  }));
  CHECK_FALSE(value(d, "project:p*:baseline_metrics").has_value());
  CHECK(d.app->readiness().ready);
}

TEST_CASE("warm: a hanging query does not delay an invalidation") {
  auto& pg = tiertest::postgres();
  pg.query("CREATE TABLE IF NOT EXISTS warm_metrics (project_id text, metric text, value float8)");
  Daemon d(kHandlers, "warm-slow", "", pg.conninfo());
  d.publish("events:warm_test_slow", R"({})");
  REQUIRE(d.until([&] { return d.metric("tierd_handler_in_flight", {{"handler", "warm"}}) >= 1; }));
  d.set("project:p1:stale");
  const auto start = std::chrono::steady_clock::now();
  d.publish("system:cache_invalidation", R"({"keys":["project:p1:stale"]})");
  REQUIRE(d.until([&] { return !d.exists("project:p1:stale"); }));
  CHECK(std::chrono::steady_clock::now() - start < 1s);  // the query sleeps 3 s meanwhile
  CHECK(runs(d, "slow", "ok") == 0);
}

TEST_CASE("warm: broken warmer config is refused with the YAML path") {
  auto error = [](const std::string& warmers, bool postgres = true) {
    try {
      auto c = tierd::parse_config(
          std::string("redis:\n  url: redis://127.0.0.1:1\n") +
              (postgres ? "postgres:\n  conninfo: \"host=127.0.0.1 dbname=x\"\n" : "") +
              "handlers:\n  - type: warm\n    on: [\"events:*\"]\n" + warmers,
          "t.yaml", tierd_test::kNoEnv);
      tierd::resolve(c, tierd_test::kNoEnv);
    } catch (const tierd::ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  const std::string ok =
      "    warmers:\n      - {name: a, query: \"SELECT 1\", key: \"global:a\"}\n";
  CHECK(error(ok) == "accepted");
  CHECK_THAT(error(ok, false), Catch::Contains("reads PostgreSQL"));
  CHECK_THAT(error("    warmers: []\n"), Catch::Contains("handlers[0].warmers"));
  CHECK_THAT(
      error("    warmers:\n      - {name: a, query: q, key: \"{id}:x\"}\n"),
      Catch::Contains("handlers[0].warmers[0].key") && Catch::Contains("literal key prefix"));
  CHECK_THAT(error("    warmers:\n      - {name: a, query: q, key: \"p:{id}\"}\n"),
             Catch::Contains("placeholder {id} is not one of the warmer's params"));
  CHECK_THAT(error("    warmers:\n      - {name: a, query: q, key: \"p:x\", shape: table}\n"),
             Catch::Contains("handlers[0].warmers[0].shape"));
  CHECK_THAT(error("    warmers:\n      - {name: a, query: q, key: \"p:x\", tier: project, "
                   "ttl_s: 5}\n"),
             Catch::Contains("tier or ttl_s"));
  CHECK_THAT(error("    warmers:\n      - {name: a, query: q, key: \"p:{id}\", params: [id], "
                   "at_start: true}\n"),
             Catch::Contains("no message to take params from"));
}

TEST_CASE("warm: the example config's warmer fills the demo key from the demo schema") {
  auto& pg = tiertest::postgres();
  std::ifstream schema(std::string(TIERD_SOURCE_DIR) + "/scripts/demo_schema.sql");
  const std::string sql((std::istreambuf_iterator<char>(schema)), std::istreambuf_iterator<char>());
  REQUIRE_FALSE(sql.empty());
  pg.query(sql);
  // The built-in config's warm section, as it is, under the test's own servers.
  const YAML::Node config = YAML::Load(std::string(tierd::default_config_text()));
  YAML::Node warm;
  const YAML::Node handlers = config["handlers"];
  for (std::size_t i = 0; i < handlers.size(); ++i) {
    if (handlers[i]["type"].as<std::string>() == "warm") {
      warm = handlers[i];
    }
  }
  REQUIRE(warm);
  YAML::Emitter out;
  out << YAML::BeginMap << YAML::Key << "handlers" << YAML::Value << YAML::BeginSeq << warm
      << YAML::EndSeq << YAML::EndMap;
  Daemon d(out.c_str(), "warm-example", "", pg.conninfo());
  d.publish("events:version_promoted", R"({"project_id":"demo"})");
  REQUIRE(d.until([&] { return value(d, "project:demo:baseline_metrics").has_value(); }));
  const Json rows = *value(d, "project:demo:baseline_metrics");
  REQUIRE(rows.size() == 3);
  CHECK(rows[0]["metric"] == "coverage");
  CHECK(rows[0]["value"] == 0.81);
}
