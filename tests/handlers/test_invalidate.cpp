// The invalidate handler's pattern-job limit and the core's envelope-id de-duplication
// (dedup_ttl_s), on a tierd App against a real redis-server.
#include <catch2/catch.hpp>

#include <algorithm>

#include "daemon/daemon_rig.hpp"

namespace {

using namespace std::chrono_literals;
using tier::metrics::Labels;
using tierd_test::Daemon;

double pattern_jobs(Daemon& d, const char* state) {
  return d.metric("tierd_invalidate_pattern_jobs", {{"handler", "inv"}, {"state", state}});
}

double events(Daemon& d, const std::string& result) {
  return d.metric("tierd_handler_events_total", {{"handler", "inv"}, {"result", result}});
}

}  // namespace

TEST_CASE("the invalidate handler runs at most max_pattern_jobs pattern deletions at once") {
  // scan_batch 10 makes every job thousands of SCAN steps (each scans the whole keyspace),
  // so jobs stay running across many loop turns and the gauges can be read in between.
  Daemon d(R"(
handlers:
  - type: invalidate
    name: inv
    on: ["system:cache_invalidation"]
    scan_batch: 10
    max_pattern_jobs: 2
)",
           "inv_jobs");
  constexpr int kJobs = 6;
  constexpr int kPerJob = 2000;
  for (int j = 0; j < kJobs; ++j) {
    std::vector<std::string> mset{"MSET"};
    for (int i = 0; i < kPerJob; ++i) {
      mset.push_back(d.keys("job" + std::to_string(j) + ":" + std::to_string(i)));
      mset.push_back("v");
    }
    d.client.run(tier::raw(mset));
  }
  d.set("keep:1");
  auto received = [&] {
    return d.metric("tierd_messages_received_total", {{"channel_pattern", "system:*"}});
  };

  d.publish("system:cache_invalidation",
            R"({"patterns":["job0:*","job1:*","job2:*","job3:*","job4:*"]})");
  REQUIRE(d.until([&] { return received() == 1; }));
  // Handling the message queued five jobs and started only two of them.
  CHECK(pattern_jobs(d, "running") == 2);
  CHECK(pattern_jobs(d, "waiting") == 3);

  // A second message's job waits behind them (the limit is per handler, not per message).
  d.publish("system:cache_invalidation", R"({"patterns":["job5:*"]})");
  REQUIRE(d.until([&] { return received() == 2; }));
  CHECK(pattern_jobs(d, "running") == 2);
  CHECK(pattern_jobs(d, "waiting") == 4);

  // Until all is done, never more than two run, and a free slot is taken at once.
  double most = 0;
  bool idle_slot_while_waiting = false;
  REQUIRE(d.loop.run_until(
      [&] {
        const double running = pattern_jobs(d, "running");
        const double waiting = pattern_jobs(d, "waiting");
        most = std::max(most, running);
        idle_slot_while_waiting = idle_slot_while_waiting || (waiting > 0 && running < 2);
        return events(d, "ok") == 2;
      },
      30s));
  CHECK(most == 2);
  CHECK_FALSE(idle_slot_while_waiting);
  CHECK(pattern_jobs(d, "running") == 0);
  CHECK(pattern_jobs(d, "waiting") == 0);
  CHECK(d.metric("tierd_invalidate_jobs_total", {{"handler", "inv"}, {"result", "ok"}}) == kJobs);
  CHECK(d.metric("tierd_invalidate_keys_deleted_total",
                 {{"handler", "inv"}, {"kind", "pattern"}}) == kJobs * kPerJob);
  CHECK(d.metric("tierd_invalidate_job_duration_seconds", {{"handler", "inv"}}) == kJobs);
  for (int j = 0; j < kJobs; ++j) {
    CHECK_FALSE(d.exists("job" + std::to_string(j) + ":0"));
    CHECK_FALSE(d.exists("job" + std::to_string(j) + ":" + std::to_string(kPerJob - 1)));
  }
  CHECK(d.exists("keep:1"));
}

namespace {

const std::string kDedup = R"(
handlers:
  - type: invalidate
    name: inv
    on: ["system:cache_invalidation"]
    dedup_ttl_s: 60
)";

}  // namespace

TEST_CASE("dedup_ttl_s: an event whose envelope id was seen is not handled again") {
  Daemon d(kDedup, "dedup");
  const std::string ch = "system:cache_invalidation";

  d.set("a");
  d.publish(ch, R"({"id":"e1","keys":["a"]})");
  REQUIRE(d.until([&] { return events(d, "ok") == 1; }));
  CHECK_FALSE(d.exists("a"));
  // The claim is a key of its own, under the namespace, with the configured TTL.
  const std::string seen = d.keys("tierd:seen:inv:e1");
  const auto ttl = d.client.run(tier::raw({"TTL", seen})).integer;
  CHECK(ttl > 0);
  CHECK(ttl <= 60);

  // The same id again: counted as a duplicate, nothing deleted.
  d.set("a");
  d.publish(ch, R"({"id":"e1","keys":["a"]})");
  REQUIRE(d.until([&] { return events(d, "duplicate") == 1; }));
  CHECK(d.exists("a"));
  CHECK(events(d, "ok") == 1);

  // Another id, and messages without an id, are handled every time.
  d.publish(ch, R"({"id":"e2","keys":["a"]})");
  REQUIRE(d.until([&] { return events(d, "ok") == 2; }));
  CHECK_FALSE(d.exists("a"));
  for (int i = 0; i < 2; ++i) {
    d.set("a");
    d.publish(ch, R"({"keys":["a"]})");
    REQUIRE(d.until([&] { return events(d, "ok") == 3 + i; }));
    CHECK_FALSE(d.exists("a"));
  }

  // Glob characters in an id are literal: "*" claims only itself.
  d.publish(ch, R"({"id":"*","keys":["b"]})");
  d.set("c");
  d.publish(ch, R"({"id":"e3","keys":["c"]})");
  REQUIRE(d.until([&] { return events(d, "ok") == 6; }));
  CHECK_FALSE(d.exists("c"));
  CHECK(d.client.run(tier::raw({"EXISTS", d.keys("tierd:seen:inv:*")})).integer == 1);
  CHECK(events(d, "duplicate") == 1);

  // Ids that cannot be part of a key are refused, not handled (and not claimed).
  d.set("h");
  const std::string hostile[] = {
      R"({"id":"","keys":["h"]})",
      R"({"id":"a\u0001b","keys":["h"]})",
      R"({"id":"a\nb","keys":["h"]})",
      R"({"id":")" + std::string(600, 'x') + R"(","keys":["h"]})",
  };
  for (const auto& m : hostile) {
    d.publish(ch, m);
  }
  REQUIRE(d.until([&] { return events(d, "fail") == 4; }));
  CHECK(d.exists("h"));
  CHECK(events(d, "ok") == 6);
  CHECK(d.client.run(tier::raw({"EXISTS", d.keys("tierd:seen:inv:")})).integer == 0);
  // A non-string id never reaches a handler (the dispatcher rejects it).
  d.publish(ch, R"({"id":7,"keys":["h"]})");
  REQUIRE(d.until([&] {
    return d.metric("tierd_messages_rejected_total",
                    {{"channel_pattern", "system:*"}, {"reason", "wrong_type"}}) == 1;
  }));
  CHECK(d.exists("h"));
}

TEST_CASE("without dedup_ttl_s the same envelope id is handled every time") {
  Daemon d(R"(
handlers:
  - type: invalidate
    name: inv
    on: ["system:cache_invalidation"]
)",
           "no_dedup");
  for (int i = 1; i <= 2; ++i) {
    d.set("a");
    d.publish("system:cache_invalidation", R"({"id":"same","keys":["a"]})");
    REQUIRE(d.until([&] { return events(d, "ok") == i; }));
    CHECK_FALSE(d.exists("a"));
  }
  CHECK(events(d, "duplicate") == 0);
  CHECK(d.client.run(tier::raw({"EXISTS", d.keys("tierd:seen:inv:same")})).integer == 0);
}

TEST_CASE("dedup: a claim Redis refuses is retried by the core and leaves the id unclaimed") {
  tiertest::RedisServer server;
  Daemon d(kDedup + "    max_attempts: 2\n    retry_backoff_ms: 10\n", "dedup_oom", "", "", server);
  d.set("a");
  // Past maxmemory (noeviction), Redis refuses SET with an OOM error; deletes still work.
  d.client.run(tier::raw({"CONFIG", "SET", "maxmemory", "1"}));
  d.publish("system:cache_invalidation", R"({"id":"m1","keys":["a"]})");
  REQUIRE(d.until([&] { return events(d, "fail") == 1; }));
  CHECK(events(d, "retry") == 1);
  CHECK(d.exists("a"));
  CHECK(d.client.run(tier::raw({"EXISTS", d.keys("tierd:seen:inv:m1")})).integer == 0);

  // Once Redis accepts writes again, the same id is handled (it was never claimed).
  d.client.run(tier::raw({"CONFIG", "SET", "maxmemory", "0"}));
  d.publish("system:cache_invalidation", R"({"id":"m1","keys":["a"]})");
  REQUIRE(d.until([&] { return events(d, "ok") == 1; }));
  CHECK_FALSE(d.exists("a"));
  CHECK(events(d, "duplicate") == 0);
}
