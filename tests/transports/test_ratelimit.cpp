// Rate limits against the harness's real redis-server: every algorithm's reply at its
// edges, exact counts under threads and two processes, cost, shadow mode, the policies
// when Redis is unreachable, and bad input.

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>
#include <vector>

#include "support/helpers.hpp"
#include "support/servers.hpp"
#include "tier/quota.hpp"
#include "tier/ratelimit.hpp"
#include "tier/script.hpp"

using namespace std::chrono_literals;
using tier::RateAlgorithm;
using tier::RateLimit;
using tiertest::Runner;

namespace {

Runner::Kind transport() {
  return GENERATE(Runner::Kind::sync, Runner::Kind::async);
}

RateAlgorithm algorithm() {
  return GENERATE(RateAlgorithm::fixed_window, RateAlgorithm::sliding_log,
                  RateAlgorithm::sliding_counter, RateAlgorithm::token_bucket,
                  RateAlgorithm::leaky_bucket, RateAlgorithm::gcra);
}

/// Allowed checks of `attempts` made by `threads` threads, each with its own client.
int hammer(const std::string& url, const tier::RateLimiter& limiter, const RateLimit& limit,
           int threads, int attempts) {
  std::atomic<int> allowed{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      tier::Client client(url);
      for (int i = 0; i < attempts; ++i) {
        if (client.run(limiter.check("u-hammer", limit)).allowed) {
          ++allowed;
        }
      }
    });
  }
  for (auto& th : pool) {
    th.join();
  }
  return allowed.load();
}

}  // namespace

TEST_CASE("rate limits: the reply at the edges, for every algorithm", "[ratelimit]") {
  auto& redis = tiertest::redis();
  const auto algo = algorithm();
  Runner run(transport(), redis.url());
  INFO(run.name() << " " << tier::to_string(algo));
  tiertest::TestKeys keys(redis.client(), "rl-edges");
  tier::RateLimiter limiter({.prefix = keys.prefix()});
  const RateLimit limit{.algorithm = algo, .limit = 5, .window = 1000ms};

  // First call: allowed, 4 left, nothing to wait for.
  auto first = run.run(limiter.check("u1", limit));
  REQUIRE(first.ok());
  CHECK(first->allowed);
  CHECK(first->decision == tier::RateDecision::allowed);
  CHECK(first->limit == 5);
  CHECK(first->remaining == 4);
  CHECK(first->retry_after == 0ms);
  CHECK(first->reset_after > 0ms);
  CHECK(first->reset_after <= 2000ms);

  // Up to the last allowed one; the key has a TTL all along.
  tier::RateResult last;
  for (int i = 0; i < 4; ++i) {
    last = *run.run(limiter.check("u1", limit));
    CHECK(last.allowed);
  }
  CHECK(last.remaining == 0);
  const std::string key = *limiter.key("u1", limit);
  const auto pttl = redis.client().run(tier::raw({"PTTL", key})).integer;
  CHECK(pttl > 0);
  CHECK(pttl <= 2000);

  // The first denied: nothing consumed, a wait that is due within the window.
  auto denied = *run.run(limiter.check("u1", limit));
  CHECK_FALSE(denied.allowed);
  CHECK(denied.decision == tier::RateDecision::denied);
  CHECK(denied.remaining == 0);
  CHECK(denied.retry_after > 0ms);
  // The sliding counter waits into the next window, until the previous one weighs little
  // enough: up to two windows.
  CHECK(denied.retry_after <= (algo == RateAlgorithm::sliding_counter ? 2000ms : 1000ms));

  // status consumes nothing and agrees.
  auto peek = *run.run(limiter.status("u1", limit));
  CHECK_FALSE(peek.allowed);
  CHECK(peek.retry_after > 0ms);

  // After retry_after, the same request passes (polled with a deadline, not slept).
  const auto until = std::chrono::steady_clock::now() + denied.retry_after;
  REQUIRE(tiertest::eventually([&] { return std::chrono::steady_clock::now() >= until; }, 3s));
  REQUIRE(tiertest::eventually([&] { return run.run(limiter.check("u1", limit))->allowed; }, 3s));

  // reset forgets the state: a full allowance again.
  CHECK(*run.run(limiter.reset("u1", limit)));
  CHECK(run.run(limiter.check("u1", limit))->remaining == 4);
}

TEST_CASE("rate limits: threads and two processes on one key get exactly the limit",
          "[ratelimit]") {
  auto& redis = tiertest::redis();
  const auto algo = algorithm();
  INFO(tier::to_string(algo));
  tiertest::TestKeys keys(redis.client(), "rl-hammer");
  tier::RateLimiter limiter({.prefix = keys.prefix()});
  // A window long enough that nothing refills during the test.
  const RateLimit limit{.algorithm = algo, .limit = 150, .window = 3600s};

  const auto [here, there] =
      tiertest::in_two_processes([&] { return hammer(redis.url(), limiter, limit, 4, 50); });
  REQUIRE(there >= 0);
  // 400 attempts from 8 clients in two processes: exactly 150 allowed.
  CHECK(here + there == 150);
}

TEST_CASE("rate limits: cost takes several units; a cost that could never pass is invalid",
          "[ratelimit]") {
  auto& redis = tiertest::redis();
  const auto algo = algorithm();
  INFO(tier::to_string(algo));
  tiertest::TestKeys keys(redis.client(), "rl-cost");
  tier::RateLimiter limiter({.prefix = keys.prefix()});
  tier::Client& c = redis.client();
  const RateLimit limit{.algorithm = algo, .limit = 10, .window = 3600s};
  auto r = c.run(limiter.check("u1", limit, 4));
  CHECK(r.allowed);
  CHECK(r.remaining == 6);
  CHECK(c.run(limiter.check("u1", limit, 6)).remaining == 0);
  auto denied = c.run(limiter.check("u1", limit, 1));
  CHECK_FALSE(denied.allowed);

  auto too_big = c.try_run(limiter.check("u2", limit, 11));
  REQUIRE_FALSE(too_big.ok());
  CHECK(too_big.error().kind == tier::ErrorKind::invalid);
  CHECK(too_big.error().message ==
        "rate limit: cost 11 is above the limit 10: it could never be allowed");
  // Nothing of u2 was written.
  CHECK(c.run(tier::raw({"EXISTS", *limiter.key("u2", limit)})).integer == 0);
}

TEST_CASE("rate limits: token buckets refill and GCRA spaces requests at limit/window",
          "[ratelimit]") {
  auto& redis = tiertest::redis();
  tiertest::TestKeys keys(redis.client(), "rl-refill");
  tier::RateLimiter limiter({.prefix = keys.prefix()});
  tier::Client& c = redis.client();
  for (auto algo :
       {RateAlgorithm::token_bucket, RateAlgorithm::leaky_bucket, RateAlgorithm::gcra}) {
    INFO(tier::to_string(algo));
    // 10 per second, bursts of 3: three at once, then one every 100 ms.
    const RateLimit limit{.algorithm = algo, .limit = 10, .window = 1000ms, .burst = 3};
    for (int i = 0; i < 3; ++i) {
      CHECK(c.run(limiter.check("u1", limit)).allowed);
    }
    auto denied = c.run(limiter.check("u1", limit));
    CHECK_FALSE(denied.allowed);
    CHECK(denied.retry_after > 0ms);
    CHECK(denied.retry_after <= 100ms);
    CHECK(denied.reset_after <= 300ms);
    const auto until = std::chrono::steady_clock::now() + denied.retry_after;
    REQUIRE(tiertest::eventually([&] { return std::chrono::steady_clock::now() >= until; }, 2s));
    REQUIRE(tiertest::eventually([&] { return c.run(limiter.check("u1", limit)).allowed; }, 2s));
  }
}

TEST_CASE("rate limits: the sliding counter stays within its documented bound", "[ratelimit]") {
  auto& redis = tiertest::redis();
  tiertest::TestKeys keys(redis.client(), "rl-sliding");
  tier::RateLimiter limiter({.prefix = keys.prefix()});
  tier::Client& c = redis.client();
  const RateLimit counter{
      .algorithm = RateAlgorithm::sliding_counter, .limit = 20, .window = 400ms};
  // Steady traffic for three windows: the admitted count in any one fixed window never
  // passes the limit, and over the run the estimate admits no more than the limit per
  // window plus the previous window's share (docs/ratelimit.md).
  std::vector<std::chrono::steady_clock::time_point> admitted;
  const auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < 1200ms) {
    if (c.run(limiter.check("u1", counter)).allowed) {
      admitted.push_back(std::chrono::steady_clock::now());
    }
  }
  REQUIRE(admitted.size() >= 40);
  for (std::size_t i = 0; i < admitted.size(); ++i) {
    // Any window-long span holds at most 2 * limit (the bound), and the whole run no more
    // than limit per window plus one window's worth.
    std::size_t in_span = 0;
    for (std::size_t j = i; j < admitted.size() && admitted[j] - admitted[i] < 400ms; ++j) {
      ++in_span;
    }
    CHECK(in_span <= 40);
  }
  CHECK(admitted.size() <= 20 * 4);
}

TEST_CASE("rate limits: shadow mode never denies, and says it would have", "[ratelimit]") {
  auto& redis = tiertest::redis();
  tiertest::TestKeys keys(redis.client(), "rl-shadow");
  tier::RateLimiter shadow({.prefix = keys.prefix(), .shadow = true});
  tier::Client& c = redis.client();
  const RateLimit limit{.limit = 2, .window = 3600s};
  int shadow_denied = 0;
  for (int i = 0; i < 5; ++i) {
    auto r = c.run(shadow.check("u1", limit));
    CHECK(r.allowed);
    shadow_denied += r.decision == tier::RateDecision::shadow_denied ? 1 : 0;
  }
  CHECK(shadow_denied == 3);
  CHECK(shadow.stats().allowed == 2);
  CHECK(shadow.stats().shadow_denied == 3);
  CHECK(shadow.stats().denied == 0);
}

TEST_CASE("rate limits: fail-open and fail-closed when Redis is stopped or frozen", "[ratelimit]") {
  tiertest::RedisServer own;  // a private server this test stops and freezes
  const RateLimit limit{.limit = 5, .window = 1000ms};
  tier::ClientOptions o;
  o.endpoint = tier::RedisEndpoint::parse(own.url());
  o.command_timeout = 300ms;
  o.connect_timeout = 300ms;
  tier::Client client(o);
  REQUIRE(client.run(tier::RateLimiter().check("u1", limit)).allowed);

  auto decide_both = [&](const char* state) {
    INFO(state);
    for (auto policy : {tier::FailPolicy::open, tier::FailPolicy::closed}) {
      tier::RateLimiter limiter({.on_unavailable = policy});
      auto raw = client.try_run(limiter.check("u1", limit));
      REQUIRE_FALSE(raw.ok());
      CHECK(raw.error().transient());
      auto r = limiter.decide(std::move(raw), limit);
      REQUIRE(r.ok());
      if (policy == tier::FailPolicy::open) {
        CHECK(r->allowed);
        CHECK(r->decision == tier::RateDecision::fail_open);
        CHECK(limiter.stats().fail_open == 1);
      } else {
        CHECK_FALSE(r->allowed);
        CHECK(r->decision == tier::RateDecision::fail_closed);
        CHECK(r->retry_after == 1000ms);
        CHECK(limiter.stats().fail_closed == 1);
      }
    }
  };
  own.pause();  // frozen: the deadline decides
  decide_both("frozen");
  own.resume();
  own.stop();  // gone: the connection fails
  decide_both("stopped");

  // An invalid request stays an error whatever the policy.
  tier::RateLimiter open({.on_unavailable = tier::FailPolicy::open});
  auto bad = open.decide(client.try_run(open.check("u1", {.limit = 0})), limit);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().kind == tier::ErrorKind::invalid);
}

TEST_CASE("rate limits: bad input is refused before Redis, naming what is wrong", "[ratelimit]") {
  auto& redis = tiertest::redis();
  tier::Client& c = redis.client();
  tier::RateLimiter limiter;
  auto error = [&](tier::Op<tier::RateResult> op) {
    auto r = c.try_run(std::move(op));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().kind == tier::ErrorKind::invalid);
    return r.error().message;
  };
  CHECK(error(limiter.check("u1", {.limit = 0})) == "rate limit: limit must be at least 1, got 0");
  CHECK(error(limiter.check("u1", {.limit = -3})) ==
        "rate limit: limit must be at least 1, got -3");
  CHECK(error(limiter.check("u1", {.limit = 5, .window = 0ms})) ==
        "rate limit: window must be at least 1 ms, got 0 ms");
  CHECK(error(limiter.check("u1", {.limit = 5}, 0)) ==
        "rate limit: cost must be at least 1, got 0");
  CHECK(error(limiter.check("", {.limit = 5})).find("user_id") != std::string::npos);
  CHECK(error(limiter.check("a\nb", {.limit = 5})).find("user_id") != std::string::npos);
  CHECK(error(limiter.check("a}b", {.limit = 5})).find("hash tag") != std::string::npos);
  CHECK(error(limiter.check("u1", {.limit = 5, .name = "a:b"})).find("rate limit name") !=
        std::string::npos);
  CHECK_FALSE(tier::parse_rate_algorithm("leaky"));
  CHECK(tier::parse_rate_algorithm("gcra") == RateAlgorithm::gcra);

  // The script checks for itself too (other languages call it directly).
  auto direct = c.run(tier::raw(
      {"EVAL", tier::script("ratelimit").source, "1", "k", "nope", "5", "1000", "", "1", "0"}));
  CHECK(direct.is_error());
  CHECK(direct.str.starts_with("ERR invalid algorithm"));
}

TEST_CASE("rate limits and quotas: a Python app on the same scripts shares the counts",
          "[ratelimit][quota]") {
  auto& redis = tiertest::redis();
  tier::Client& c = redis.client();
  tiertest::TestKeys keys(c, "rl-python");
  // Debian's interpreter and python3-redis (scripts/setup), running the documented example.
  tiertest::run_command(
      {"/usr/bin/python3",
       std::string(TIERD_SOURCE_DIR) + "/clients/python/examples/ratelimit_quota.py", redis.url(),
       keys.prefix()});
  // Python took 3 of 5; C++ sees the same window and takes the 4th.
  tier::RateLimiter limiter({.prefix = keys.prefix()});
  auto r = c.run(limiter.check("py-user", {.limit = 5, .window = 60000ms}));
  CHECK(r.allowed);
  CHECK(r.remaining == 1);
  // Python counted 85 of 100 and got the 0.8 warning; C++ adds 1 and gets none again.
  tier::Quotas quotas({.prefix = keys.prefix(), .warning_channel = ""});
  auto u = c.run(quotas.increment("py-user", "api_calls", 1, {.daily = 100}));
  CHECK(u.daily.used == 86);
  CHECK(u.warnings.empty());
}
