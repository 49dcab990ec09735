// The daemon object on a test loop against the harness's real Redis: invalidation as a
// publisher triggers it, bad input counted and dropped, the core's queues and retries
// (with a test handler), reload and drain.
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <set>
#include <string_view>

#include "config/config.hpp"
#include "daemon/app.hpp"
#include "daemon/dispatcher.hpp"
#include "daemon_rig.hpp"
#include "support/helpers.hpp"
#include "support/servers.hpp"
#include "tier/metrics.hpp"
#include "tier/op.hpp"

namespace {

using namespace std::chrono_literals;
using tier::metrics::Labels;
using tierd_test::Daemon;
using tierd_test::quiet_logger;

const std::string kInvalidate = R"(
handlers:
  - type: invalidate
    name: inv
    on: ["system:cache_invalidation", "events:version_promoted"]
    rules:
      - on: events:version_promoted
        invalidate: ["project:{project_id}:analysis:*", "project:{project_id}:summary"]
)";

Labels handler_result(const std::string& result) {
  return {{"handler", "inv"}, {"result", result}};
}

}  // namespace

TEST_CASE("invalidate deletes exactly the keys, patterns, sessions and projects named") {
  Daemon d(kInvalidate, "inv_basic");
  for (const char* k :
       {"plain:k1", "plain:k2", "project:42:analysis:a", "project:42:analysis:b", "project:42:keep",
        "project:43:x", "project:43:y", "session:s1:a", "session:s2:a", "other:keep"}) {
    d.set(k);
  }
  d.publish("system:cache_invalidation", R"({"keys":["plain:k1"]})");
  REQUIRE(d.until([&] { return !d.exists("plain:k1"); }));
  CHECK(d.exists("plain:k2"));

  d.publish("system:cache_invalidation", R"({"patterns":["project:42:analysis:*"]})");
  REQUIRE(d.until([&] { return !d.exists("project:42:analysis:b"); }));
  CHECK_FALSE(d.exists("project:42:analysis:a"));
  CHECK(d.exists("project:42:keep"));

  d.publish("system:cache_invalidation", R"({"session_id":"s1","project_id":"43"})");
  REQUIRE(d.until([&] { return !d.exists("session:s1:a") && !d.exists("project:43:y"); }));
  CHECK_FALSE(d.exists("project:43:x"));
  CHECK(d.exists("session:s2:a"));
  CHECK(d.exists("other:keep"));

  REQUIRE(
      d.until([&] { return d.metric("tierd_handler_events_total", handler_result("ok")) == 3; }));
  CHECK(d.metric("tierd_invalidate_keys_deleted_total", {{"handler", "inv"}, {"kind", "key"}}) ==
        1);
  CHECK(d.metric("tierd_invalidate_keys_deleted_total",
                 {{"handler", "inv"}, {"kind", "pattern"}}) == 5);
  CHECK(d.metric("tierd_invalidate_job_duration_seconds", {{"handler", "inv"}}) == 3);
}

TEST_CASE("rules fill placeholders from the message; hostile values never widen a pattern") {
  Daemon d(kInvalidate, "inv_rules");
  for (const char* k : {"project:7:analysis:a", "project:7:summary", "project:7:keep",
                        "project:8:analysis:a", "project:77:analysis:a", "session:s2:a"}) {
    d.set(k);
  }
  const char* hostile[] = {
      R"({"project_id":"*"})",   R"({"project_id":"7*"})",   R"({"project_id":"[78]"})",
      R"({"project_id":""})",    R"({"project_id":5})",      R"({"project_id":null})",
      R"({"project_id":["7"]})", R"({"project_id":"7\n8"})", R"({"project_id":"7\\"})",
      R"({"other":"7"})",
  };
  for (const char* m : hostile) {
    d.publish("events:version_promoted", m);
  }
  // An id with glob characters in an explicit invalidation is escaped, so it matches
  // nothing but itself.
  d.publish("system:cache_invalidation", R"({"session_id":"*"})");
  d.publish("system:cache_invalidation", R"({"patterns":["*"]})");
  d.publish("system:cache_invalidation", R"({"keys":"project:7:keep"})");
  d.publish("system:cache_invalidation", R"({})");
  REQUIRE(d.until([&] {
    return d.metric("tierd_handler_events_total", handler_result("fail")) == 13 &&
           d.metric("tierd_handler_events_total", handler_result("ok")) == 1;  // session "*"
  }));
  for (const char* k : {"project:7:analysis:a", "project:7:summary", "project:7:keep",
                        "project:8:analysis:a", "project:77:analysis:a", "session:s2:a"}) {
    INFO(k);
    CHECK(d.exists(k));
  }
  CHECK(d.metric("tierd_invalidate_rejected_total",
                 {{"handler", "inv"}, {"reason", "bad_value"}}) == 6);
  CHECK(d.metric("tierd_invalidate_rejected_total",
                 {{"handler", "inv"}, {"reason", "missing_field"}}) == 1);
  CHECK(d.metric("tierd_invalidate_rejected_total",
                 {{"handler", "inv"}, {"reason", "wrong_type"}}) == 4);
  CHECK(d.metric("tierd_invalidate_rejected_total",
                 {{"handler", "inv"}, {"reason", "unsafe_pattern"}}) == 1);

  d.publish("events:version_promoted", R"({"project_id":"7"})");
  REQUIRE(
      d.until([&] { return !d.exists("project:7:analysis:a") && !d.exists("project:7:summary"); }));
  CHECK(d.exists("project:7:keep"));
  CHECK(d.exists("project:77:analysis:a"));
  CHECK(d.exists("project:8:analysis:a"));
}

TEST_CASE("malformed messages are counted by pattern and reason, and the daemon goes on") {
  Daemon d(kInvalidate, "bad_corpus");
  d.set("plain:alive");
  auto rejected = [&](const std::string& reason) {
    return d.metric("tierd_messages_rejected_total",
                    {{"channel_pattern", "system:*"}, {"reason", reason}});
  };
  const std::string ch = "system:cache_invalidation";
  d.publish(ch, "not json at all");
  d.publish(ch, R"({"keys":["a"])");  // truncated
  d.publish(ch, R"(["keys"])");
  d.publish(ch, "42");
  d.publish(ch, "\"a string\"");
  d.publish(ch, "{\"keys\":[\"\xff\xfe\"]}");
  d.publish(ch, std::string(10 * 1024 * 1024, 'x'));
  d.publish(ch, "{\"a\":" + std::string(100000, '[') + std::string(100000, ']') + "}");
  d.publish(ch, R"({"id":5,"keys":["a"]})");
  d.publish(ch, "");
  REQUIRE(d.until([&] { return rejected("wrong_type") == 1; }));
  CHECK(rejected("not_json") == 3);  // garbage, truncated, empty
  CHECK(rejected("not_object") == 3);
  CHECK(rejected("invalid_utf8") == 1);
  CHECK(rejected("too_large") == 1);
  CHECK(rejected("too_deep") == 1);
  CHECK(d.metric("tierd_messages_received_total", {{"channel_pattern", "system:*"}}) == 10);
  CHECK(d.metric("tierd_handler_events_total", handler_result("ok")) == 0);

  // Still serving, and /metrics says the same.
  d.publish(ch, R"({"keys":["plain:alive"]})");
  REQUIRE(d.until([&] { return !d.exists("plain:alive"); }));
  const std::string text = d.app->metrics().render();
  CHECK(
      text.find("tierd_messages_rejected_total{channel_pattern=\"system:*\",reason=\"too_large\"} "
                "1") != std::string::npos);
}

namespace {

/// A handler under the test's control: answers with what `script` says per attempt, or
/// holds the answer until release().
struct Probe {
  std::vector<tierd::HandlerResult::Kind> script;  // per call; past the end: ok
  bool hold = false;
  std::vector<tierd::Done> held;
  int calls = 0;
  int stops = 0;
  std::vector<std::chrono::steady_clock::time_point> call_times;
  void release() {
    auto h = std::move(held);
    held.clear();
    for (auto& d : h) {
      d(tierd::HandlerResult::ok());
    }
  }
};

class ProbeHandler final : public tierd::Handler {
 public:
  explicit ProbeHandler(Probe& p) : p_(p) {}
  void handle(std::shared_ptr<const tierd::Event>, tierd::Done done) override {
    const std::size_t i = static_cast<std::size_t>(p_.calls++);
    p_.call_times.push_back(std::chrono::steady_clock::now());
    if (p_.hold) {
      p_.held.push_back(std::move(done));
      return;
    }
    const auto k = i < p_.script.size() ? p_.script[i] : tierd::HandlerResult::Kind::ok;
    done(tierd::HandlerResult{k, "scripted"});
  }
  void stop(std::function<void()> drained) override {
    ++p_.stops;
    drained();
  }
  std::vector<std::string> required_fields() const override { return {"needed"}; }

 private:
  Probe& p_;
};

struct CoreRig {
  explicit CoreRig(Probe& probe, std::size_t concurrency = 1, std::size_t queue = 2,
                   std::uint32_t attempts = 3) {
    env.loop = loop.get();
    env.metrics = &metrics;
    env.log = log.get();
    env.instance_id = "test:1";
    config.max_message_bytes = 1024;
    tierd::HandlerConfig h;
    h.type = "probe";
    h.name = "probe";
    h.on = {"events:*"};
    h.max_concurrency = concurrency;
    h.queue_limit = queue;
    h.max_attempts = attempts;
    h.retry_backoff = 10ms;
    config.handlers.push_back(h);
    handlers.push_back(
        {h, [&probe](tierd::Context&) { return std::make_unique<ProbeHandler>(probe); }});
    dispatcher = std::make_unique<tierd::Dispatcher>(env);
    dispatcher->install(config, handlers);
  }
  double events(const std::string& result) {
    return metrics.value("tierd_handler_events_total", {{"handler", "probe"}, {"result", result}});
  }

  tiertest::TestLoop loop;
  tier::metrics::Registry metrics;
  std::shared_ptr<spdlog::logger> log = quiet_logger();
  tierd::DispatcherEnv env;
  tierd::Config config;
  tierd::ResolvedHandlers handlers;
  std::unique_ptr<tierd::Dispatcher> dispatcher;
};

}  // namespace

TEST_CASE("the core retries with backoff up to max_attempts, then gives up") {
  using K = tierd::HandlerResult::Kind;
  Probe probe;
  probe.script = {K::retry, K::retry, K::ok, K::retry, K::retry, K::retry};
  CoreRig rig(probe);
  rig.dispatcher->on_message("events:*", "events:a", R"({"needed":1})");
  REQUIRE(rig.loop.run_until([&] { return rig.events("ok") == 1; }, 2s));
  CHECK(probe.calls == 3);
  CHECK(rig.events("retry") == 2);
  rig.dispatcher->on_message("events:*", "events:a", R"({"needed":1})");
  REQUIRE(rig.loop.run_until([&] { return rig.events("fail") == 1; }, 2s));
  CHECK(probe.calls == 6);  // three attempts, no more
  CHECK(rig.events("retry") == 4);
}

TEST_CASE("the core waits its backoff before each retry, doubling per attempt") {
  using K = tierd::HandlerResult::Kind;
  Probe probe;
  probe.script = {K::retry, K::retry, K::ok};
  CoreRig rig(probe, 1, 2, /*attempts=*/3);
  rig.config.handlers[0].retry_backoff = 40ms;
  rig.handlers[0].config.retry_backoff = 40ms;
  rig.dispatcher->install(rig.config, rig.handlers);
  rig.dispatcher->on_message("events:*", "events:a", R"({"needed":1})");
  REQUIRE(rig.loop.run_until([&] { return rig.events("ok") == 1; }, 5s));
  REQUIRE(probe.call_times.size() == 3);
  auto gap = [&](std::size_t i) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(probe.call_times[i] -
                                                                 probe.call_times[i - 1]);
  };
  // Jitter keeps each delay within [d/2, d]: at least 20 ms, then at least 40 ms. libuv's
  // clock counts whole milliseconds, so a timer may fire up to 1 ms short of its delay.
  CHECK(gap(1) >= 19ms);
  CHECK(gap(2) >= 39ms);
}

TEST_CASE("the core bounds concurrency and queue, counts overflow and missing fields") {
  Probe probe;
  probe.hold = true;
  CoreRig rig(probe, /*concurrency=*/1, /*queue=*/2);
  for (int i = 0; i < 5; ++i) {
    rig.dispatcher->on_message("events:*", "events:a", R"({"needed":1})");
  }
  rig.dispatcher->on_message("events:*", "events:a", R"({"other":1})");
  CHECK(probe.calls == 1);  // one in flight, two queued, two dropped
  CHECK(rig.metrics.value("tierd_handler_queue_overflow_total", {{"handler", "probe"}}) == 2);
  CHECK(rig.metrics.value("tierd_handler_queue_depth", {{"handler", "probe"}}) == 2);
  CHECK(rig.metrics.value("tierd_messages_rejected_total",
                          {{"channel_pattern", "events:*"}, {"reason", "missing_field"}}) == 1);
  // Unrouted channels are counted, not errors.
  rig.dispatcher->on_message("system:*", "system:x", R"({"needed":1})");
  CHECK(rig.metrics.value("tierd_messages_unrouted_total", {{"channel_pattern", "system:*"}}) == 1);

  // Drain: the queue finishes, then stop() runs, then done(clean).
  std::optional<bool> drained;
  rig.dispatcher->drain(2s, [&](bool clean) { drained = clean; });
  rig.dispatcher->on_message("events:*", "events:a", R"({"needed":1})");  // refused now
  for (int i = 0; i < 3; ++i) {
    REQUIRE(rig.loop.run_until([&] { return !probe.held.empty(); }, 1s));
    probe.release();
  }
  REQUIRE(rig.loop.run_until([&] { return drained.has_value(); }, 2s));
  CHECK(*drained);
  CHECK(probe.calls == 3);
  CHECK(probe.stops == 1);
  CHECK(rig.events("ok") == 3);
}

TEST_CASE("drain gives up at its deadline when a handler never answers") {
  Probe probe;
  probe.hold = true;
  CoreRig rig(probe);
  rig.dispatcher->on_message("events:*", "events:a", R"({"needed":1})");
  std::optional<bool> drained;
  const auto t0 = std::chrono::steady_clock::now();
  rig.dispatcher->drain(200ms, [&](bool clean) { drained = clean; });
  REQUIRE(rig.loop.run_until([&] { return drained.has_value(); }, 2s));
  CHECK_FALSE(*drained);
  CHECK(std::chrono::steady_clock::now() - t0 < 1s);
  // A late answer after the deadline is harmless.
  probe.release();
}

TEST_CASE("reload: an invalid config is refused and the old handlers keep working") {
  tiertest::TempDir dir("reload");
  const std::string path = dir.path() + "/tierd.yaml";
  Daemon d(kInvalidate, "reload", path);
  {
    std::ofstream(path) << d.yaml << "  - type: invalidate\n    name: broken\n    on: [\"x:*\"]\n";
  }
  CHECK_FALSE(d.app->reload());
  CHECK(d.metric("tierd_config_reloads_total", {{"result", "error"}}) == 1);
  CHECK(d.app->dispatcher().handler_names() == std::vector<std::string>{"inv"});
  std::ofstream(path, std::ios::trunc) << "garbage: [";
  CHECK_FALSE(d.app->reload());
  d.set("plain:a");
  d.publish("system:cache_invalidation", R"({"keys":["plain:a"]})");
  REQUIRE(d.until([&] { return !d.exists("plain:a"); }));

  // A valid config replaces the handlers; the new instance does the work.
  std::string next = d.yaml;
  next.replace(next.find("name: inv"), 9, "name: inv2");
  std::ofstream(path, std::ios::trunc) << next;
  REQUIRE(d.app->reload());
  CHECK(d.app->dispatcher().handler_names() == std::vector<std::string>{"inv2"});
  d.set("plain:b");
  d.publish("system:cache_invalidation", R"({"keys":["plain:b"]})");
  REQUIRE(d.until([&] { return !d.exists("plain:b"); }));
  CHECK(d.until([&] {
    return d.metric("tierd_handler_events_total", {{"handler", "inv2"}, {"result", "ok"}}) == 1;
  }));
}

TEST_CASE("shutdown drains and closes every handle, so the loop runs out") {
  Daemon d(kInvalidate, "shutdown");
  d.app->shutdown();
  CHECK_FALSE(d.app->readiness().ready);
  REQUIRE(d.loop.run_until([&] { return d.app->finished(); }, 3s));
  CHECK(d.app->exit_code() == 0);
}

TEST_CASE("PostgreSQL, when configured, is part of readiness and handlers get the connection") {
  tiertest::PgServer pg;
  Daemon d(kInvalidate, "pg", "", pg.conninfo());
  CHECK(d.app->readiness().json.find("\"postgres\":\"ready\"") != std::string::npos);
  CHECK(d.metric("tierd_postgres_up", {}) == 1);

  pg.stop();
  REQUIRE(d.loop.run_until([&] { return !d.app->readiness().ready; }, 5s));
  const auto r = d.app->readiness();
  INFO(r.json);
  CHECK(r.json.find("\"postgres\":\"ready\"") == std::string::npos);
  CHECK(r.json.find("\"redis_commands\":\"ready\"") != std::string::npos);
  CHECK(d.metric("tierd_postgres_up", {}) == 0);

  pg.start();
  REQUIRE(d.loop.run_until([&] { return d.app->readiness().ready; }, 10s));
  CHECK(d.metric("tierd_postgres_reconnects_total", {}) == 1);
}

TEST_CASE("a handler's own connection is watched like the app's links, across a reload") {
  auto& pg = tiertest::postgres();
  pg.query(
      "DROP TABLE IF EXISTS app_own_link; CREATE TABLE app_own_link (id text PRIMARY KEY, "
      "name text)");
  const std::string handlers =
      "handlers:\n  - type: write_behind\n    on: [\"system:write_behind_flush\"]\n"
      "    tables:\n      - name: app_own_link\n        key_columns: [id]\n"
      "        columns: [name]\n";
  Daemon d(handlers, "ownlink", "", pg.conninfo());
  const tier::metrics::Labels reader{{"link", "writebehind-reader:app_own_link"}};
  // The ids of the connections named after the handler's reader link.
  auto readers = [&] {
    const std::string list = d.client.run(tier::raw({"CLIENT", "LIST"})).str;
    std::set<std::string> ids;
    std::size_t line = 0;
    while (line < list.size()) {
      const std::size_t end = std::min(list.find('\n', line), list.size());
      const std::string_view row(list.data() + line, end - line);
      if (row.find(" name=tierd:writebehind-reader:app_own_link ") != std::string_view::npos &&
          row.starts_with("id=")) {
        ids.emplace(row.substr(3, row.find(' ') - 3));
      }
      line = end + 1;
    }
    return ids;
  };
  REQUIRE(d.loop.run_until([&] { return d.metric("tierd_redis_link_up", reader) == 1; }, 5s));
  const auto before = readers();
  REQUIRE(before.size() == 1);

  // A reload builds a new instance with a link of the same label; once the old instance
  // has drained and its link is gone, the new link is still the one watched. The old and
  // new links may or may not overlap in time, so the test waits for the swap itself.
  REQUIRE(d.app->apply(d.app->config()));
  REQUIRE(d.loop.run_until(
      [&] {
        const auto now = readers();
        return now.size() == 1 && !now.contains(*before.begin());
      },
      10s));
  const bool table_up = d.loop.run_until(
      [&] {
        return d.metric("tierd_writebehind_table_up", {{"table", "app_own_link"}}) == 1;
      },
      5s);
  INFO(d.app->readiness().json);
  CHECK(table_up);
  CHECK(d.metric("tierd_redis_link_up", reader) == 1);
  CHECK(d.app->readiness().ready);
  CHECK(d.app->readiness().json.find("writebehind-reader") == std::string::npos);
}

TEST_CASE("a reload routes new events to the new handlers while the old ones drain") {
  Probe probe;
  probe.hold = true;
  CoreRig rig(probe, /*concurrency=*/4, /*queue=*/10);
  rig.dispatcher->on_message("events:*", "events:a", R"({"needed":1})");
  rig.dispatcher->on_message("events:*", "events:a", R"({"needed":1})");
  REQUIRE(probe.held.size() == 2);

  Probe fresh;
  tierd::Config next = rig.config;
  next.handlers[0].name = "probe2";
  tierd::ResolvedHandlers next_handlers{{next.handlers[0], [&fresh](tierd::Context&) {
                                           return std::make_unique<ProbeHandler>(fresh);
                                         }}};
  rig.dispatcher->install(next, next_handlers);
  rig.dispatcher->on_message("events:*", "events:a", R"({"needed":1})");
  CHECK(fresh.calls == 1);  // the new generation took it at once
  CHECK(probe.calls == 2);
  CHECK(probe.stops == 0);  // the old one still has work in flight
  CHECK(rig.dispatcher->busy() == 2);

  probe.release();
  REQUIRE(rig.loop.run_until([&] { return probe.stops == 1 && rig.dispatcher->busy() == 0; }, 2s));
  CHECK(rig.events("ok") == 2);
  CHECK(rig.dispatcher->handler_names() == std::vector<std::string>{"probe2"});
}

TEST_CASE("throughput: 5000 exact-key invalidation messages") {
  Daemon d(kInvalidate, "throughput");
  constexpr int kMessages = 5000;
  std::vector<tier::Command> sets;
  for (int i = 0; i < kMessages; ++i) {
    sets.push_back(tier::Command::of({"SET", d.keys("k:" + std::to_string(i)), "v"}));
  }
  REQUIRE(d.client.exec(sets, 10s).ok());
  // One PUBLISH per message, sent as one pipeline so the publisher is not the bottleneck.
  std::vector<tier::Command> pubs;
  for (int i = 0; i < kMessages; ++i) {
    pubs.push_back(tier::Command::of(
        {"PUBLISH", "system:cache_invalidation", R"({"keys":["k:)" + std::to_string(i) + "\"]}"}));
  }
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(d.client.exec(pubs, 10s).ok());
  REQUIRE(d.loop.run_until(
      [&] { return d.metric("tierd_handler_events_total", handler_result("ok")) == kMessages; },
      20s));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(d.metric("tierd_invalidate_keys_deleted_total", {{"handler", "inv"}, {"kind", "key"}}) ==
        kMessages);
  CHECK_FALSE(d.exists("k:0"));
  CHECK_FALSE(d.exists("k:" + std::to_string(kMessages - 1)));
  WARN(kMessages << " invalidation messages handled in " << secs << " s ("
                 << static_cast<int>(kMessages / secs) << " msg/s, one loop thread)");
}

TEST_CASE("a Redis that stalls mid-invalidation makes the core retry until it succeeds") {
  tiertest::RedisOptions ro;
  ro.extra_args = {"--enable-debug-command", "yes"};
  tiertest::RedisServer server(ro);
  Daemon d(kInvalidate + "    scan_batch: 10\n", "stall", "", "", server,
           "  command_timeout_ms: 50\n");
  constexpr int kKeys = 50000;
  for (int i = 0; i < kKeys; i += 1000) {
    std::vector<std::string> mset{"MSET"};
    for (int j = i; j < i + 1000; ++j) {
      mset.push_back(d.keys("big:" + std::to_string(j)));
      mset.push_back("v");
    }
    d.client.run(tier::raw(mset));
  }
  d.publish("system:cache_invalidation", R"({"patterns":["big:*"]})");
  // Once the scan runs (thousands of short steps), stall the server for longer than the
  // command deadline: the step in flight times out and the handler answers Retry.
  REQUIRE(d.loop.run_until(
      [&] {
        return d.metric("tierd_invalidate_pattern_jobs",
                        {{"handler", "inv"}, {"state", "running"}}) == 1;
      },
      5s));
  d.client.run(tier::raw({"DEBUG", "SLEEP", "0.3"}));
  REQUIRE(d.loop.run_until(
      [&] { return d.metric("tierd_handler_events_total", handler_result("ok")) == 1; }, 10s));
  CHECK(d.metric("tierd_handler_events_total", handler_result("retry")) >= 1);
  CHECK(d.metric("tierd_invalidate_jobs_total", {{"handler", "inv"}, {"result", "error"}}) >= 1);
  CHECK(d.metric("tierd_handler_events_total", handler_result("fail")) == 0);
  CHECK(d.client.run(tier::raw({"DBSIZE"})).integer == 0);
}
