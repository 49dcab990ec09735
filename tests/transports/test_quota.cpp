// Quotas against the harness's real redis-server: counters per UTC day and month, their
// keys and TTLs, roll-over at the boundaries (time given to the script), per-user limits,
// enforce under concurrency, and warnings published exactly once per threshold.

#include <catch2/catch.hpp>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/helpers.hpp"
#include "support/servers.hpp"
#include "tier/quota.hpp"

using namespace std::chrono_literals;
using Json = nlohmann::json;

namespace {

std::chrono::system_clock::time_point utc(int y, int mo, int d, int h, int mi, int s) {
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

}  // namespace

TEST_CASE("quotas: daily and monthly counters, keys, TTLs and limits", "[quota]") {
  auto& redis = tiertest::redis();
  tier::Client& c = redis.client();
  tiertest::TestKeys keys(c, "quota-basic");
  tier::Quotas quotas({.prefix = keys.prefix(), .warning_channel = ""});
  const auto at = utc(2026, 11, 29, 12, 0, 0);

  auto u = c.run(quotas.increment("u1", "api_calls", 3, {.daily = 10, .monthly = 100}, false, at));
  CHECK(u.allowed);
  CHECK(u.daily.key == "2026-11-29");
  CHECK(u.daily.used == 3);
  CHECK(u.daily.limit == 10);
  CHECK(u.monthly.key == "2026-11");
  CHECK(u.monthly.used == 3);
  CHECK(u.daily.ratio() == Approx(0.3));

  // The documented keys, one hash tag per user.
  const std::string day = keys.prefix() + "quota:{u1}:api_calls:2026-11-29";
  const std::string month = keys.prefix() + "quota:{u1}:api_calls:2026-11";
  CHECK(c.run(tier::raw({"GET", day})).str == "3");
  CHECK(c.run(tier::raw({"GET", month})).str == "3");
  // TTL: to the period's end (12 h and 1 d 12 h away) plus the one-day margin.
  const auto day_ttl = c.run(tier::raw({"TTL", day})).integer;
  const auto month_ttl = c.run(tier::raw({"TTL", month})).integer;
  CHECK(day_ttl == 12 * 3600 + 86400);
  CHECK(month_ttl == 36 * 3600 + 86400);

  // A per-user limit stored in Redis wins over the caller's.
  c.run(quotas.set_user_limit("u1", tier::QuotaPeriodKind::daily, 4));
  auto usage = c.run(quotas.usage("u1", "api_calls", {.daily = 10}, at));
  CHECK(usage.daily.limit == 4);
  CHECK(usage.daily.used == 3);
  CHECK(c.run(tier::raw({"GET", keys.prefix() + "ratelimit:{u1}:daily_limit"})).str == "4");
  // enforce refuses what would pass it, and counts nothing then.
  auto refused = c.run(quotas.increment("u1", "api_calls", 2, {}, true, at));
  CHECK_FALSE(refused.allowed);
  CHECK(refused.daily.used == 3);
  CHECK(c.run(quotas.increment("u1", "api_calls", 1, {}, true, at)).daily.used == 4);
  c.run(quotas.set_user_limit("u1", tier::QuotaPeriodKind::daily, std::nullopt));
  CHECK(c.run(quotas.usage("u1", "api_calls", {}, at)).daily.limit == 0);

  auto reset = c.run(quotas.reset("u1", "api_calls", at));
  CHECK(reset.daily.used == 0);
  CHECK(c.run(tier::raw({"EXISTS", day, month})).integer == 0);
}

TEST_CASE("quotas: counters roll over at the UTC day and month boundaries", "[quota]") {
  auto& redis = tiertest::redis();
  tier::Client& c = redis.client();
  tiertest::TestKeys keys(c, "quota-roll");
  tier::Quotas quotas({.prefix = keys.prefix(), .warning_channel = ""});
  auto before = c.run(quotas.increment("u1", "runs", 5, {}, false, utc(2026, 11, 30, 23, 59, 59)));
  CHECK(before.daily.key == "2026-11-30");
  CHECK(before.monthly.key == "2026-11");
  auto after = c.run(quotas.increment("u1", "runs", 1, {}, false, utc(2026, 12, 1, 0, 0, 0)));
  CHECK(after.daily.key == "2026-12-01");
  CHECK(after.daily.used == 1);
  CHECK(after.monthly.key == "2026-12");
  CHECK(after.monthly.used == 1);
  // Within a month, a new day keeps the month's count.
  auto next_day = c.run(quotas.increment("u1", "runs", 2, {}, false, utc(2026, 12, 2, 0, 0, 0)));
  CHECK(next_day.daily.used == 2);
  CHECK(next_day.monthly.used == 3);
  // Year end and a leap day.
  CHECK(c.run(quotas.usage("u1", "runs", {}, utc(2026, 12, 31, 23, 59, 59))).daily.key ==
        "2026-12-31");
  CHECK(c.run(quotas.usage("u1", "runs", {}, utc(2027, 1, 1, 0, 0, 0))).monthly.key == "2027-01");
  CHECK(c.run(quotas.usage("u1", "runs", {}, utc(2028, 2, 29, 12, 0, 0))).daily.key ==
        "2028-02-29");
  // The month key's TTL runs to the month's end: 30 days after Dec 2 00:00, plus margin.
  CHECK(c.run(tier::raw({"TTL", keys.prefix() + "quota:{u1}:runs:2026-12"})).integer ==
        30 * 86400 + 86400);
}

TEST_CASE(
    "quotas: each threshold is published exactly once under 16 concurrent incrementers "
    "in two processes",
    "[quota]") {
  auto& redis = tiertest::redis();
  tier::Client& c = redis.client();
  tiertest::TestKeys keys(c, "quota-warn");
  const std::string channel = keys.prefix() + "system:quota_warning";
  tier::Quotas quotas({.prefix = keys.prefix(), .warning_channel = channel});

  // A subscriber counts what is published.
  tier::Client listener(redis.url());
  auto sub = listener.subscribe({channel}, {});
  std::vector<Json> published;

  auto run = [&](int threads, int each) {
    std::vector<std::string> got;
    std::mutex m;
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&] {
        tier::Client client(redis.url());
        for (int i = 0; i < each; ++i) {
          auto u =
              client.run(quotas.increment("u1", "api_calls", 1, {.daily = 100, .monthly = 150}));
          std::lock_guard lock(m);
          got.insert(got.end(), u.warnings.begin(), u.warnings.end());
        }
      });
    }
    for (auto& th : pool) {
      th.join();
    }
    return got;
  };

  std::vector<std::string> here;
  const auto counts = tiertest::in_two_processes([&] {
    here = run(8, 15);
    return static_cast<int>(here.size());
  });
  const int there = counts.second;
  REQUIRE(there >= 0);

  // 240 increments against 100/day and 150/month: 0.8, 0.9 and 1 of each, once.
  CHECK(here.size() + static_cast<std::size_t>(there) == 6);
  auto final_usage = c.run(quotas.usage("u1", "api_calls", {.daily = 100, .monthly = 150}));
  CHECK(final_usage.daily.used == 240);

  std::set<std::string> ids;
  REQUIRE(tiertest::eventually(
      [&] {
        while (auto m = sub.next(10ms)) {
          published.push_back(Json::parse(m->payload));
        }
        return published.size() >= 6;
      },
      5s));
  for (const auto& w : published) {
    ids.insert(w["id"].get<std::string>());
    CHECK(w["user_id"] == "u1");
    CHECK(w["metric"] == "api_calls");
    CHECK(w["ratio"].get<double>() >= w["threshold"].get<double>());
    CHECK((w["period"] == "daily" || w["period"] == "monthly"));
    CHECK(w.contains("period_key"));
    CHECK(w.contains("used"));
    CHECK(w.contains("limit"));
  }
  CHECK(published.size() == 6);
  CHECK(ids.size() == 6);
}

TEST_CASE("quotas: one increment that jumps several thresholds publishes each", "[quota]") {
  auto& redis = tiertest::redis();
  tier::Client& c = redis.client();
  tiertest::TestKeys keys(c, "quota-jump");
  tier::Quotas quotas({.prefix = keys.prefix(), .warning_channel = ""});
  auto u = c.run(quotas.increment("u1", "storage_bytes", 95, {.daily = 100}));
  REQUIRE(u.warnings.size() == 2);
  auto a = Json::parse(u.warnings[0]);
  auto b = Json::parse(u.warnings[1]);
  CHECK(a["threshold"] == 0.8);
  CHECK(b["threshold"] == 0.9);
  CHECK(a["period"] == "daily");
  CHECK(a["used"] == 95);
  CHECK(a["limit"] == 100);
  // Not again for the same period and threshold.
  CHECK(c.run(quotas.increment("u1", "storage_bytes", 1, {.daily = 100})).warnings.empty());
  CHECK(c.run(quotas.increment("u1", "storage_bytes", 4, {.daily = 100})).warnings.size() == 1);
}

TEST_CASE("quotas: enforce never passes the limit under concurrency", "[quota]") {
  auto& redis = tiertest::redis();
  tiertest::TestKeys keys(redis.client(), "quota-enforce");
  tier::Quotas quotas({.prefix = keys.prefix(), .warning_channel = ""});
  std::atomic<int> allowed{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < 8; ++t) {
    pool.emplace_back([&] {
      tier::Client client(redis.url());
      for (int i = 0; i < 20; ++i) {
        if (client.run(quotas.increment("u1", "analysis_runs", 1, {.daily = 50}, true)).allowed) {
          ++allowed;
        }
      }
    });
  }
  for (auto& th : pool) {
    th.join();
  }
  CHECK(allowed == 50);
  CHECK(redis.client().run(quotas.usage("u1", "analysis_runs")).daily.used == 50);
}

TEST_CASE("quotas: bad input is refused, naming what is wrong", "[quota]") {
  auto& redis = tiertest::redis();
  tier::Client& c = redis.client();
  tier::Quotas quotas;
  auto error = [&](tier::Op<tier::QuotaUsage> op) {
    auto r = c.try_run(std::move(op));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().kind == tier::ErrorKind::invalid);
    return r.error().message;
  };
  CHECK(error(quotas.increment("u1", "api calls")).find("quota metric") != std::string::npos);
  CHECK(error(quotas.increment("u{1}", "api_calls")).find("hash tag") != std::string::npos);
  CHECK(error(quotas.increment("u1", "api_calls", -1)) == "quota amount must not be negative");
  CHECK(error(quotas.increment("u1", "api_calls", 1, {.daily = -5})) ==
        "quota limits must not be negative (0 = none)");
  tier::Quotas bad_thresholds({.thresholds = {"0.5", "eleven"}});
  CHECK(error(bad_thresholds.increment("u1", "api_calls")) ==
        "quota threshold 'eleven' must be a ratio above 0 and at most 10");
  // A per-user limit that is not a number is reported, not trusted.
  tiertest::TestKeys keys(c, "quota-bad");
  tier::Quotas prefixed({.prefix = keys.prefix()});
  c.run(tier::raw({"SET", keys.prefix() + "ratelimit:{u1}:monthly_limit", "lots"}));
  auto r = c.try_run(prefixed.increment("u1", "api_calls"));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message.find("invalid limit in") != std::string::npos);
}
