#include <catch2/catch.hpp>

#include "support/helpers.hpp"
#include "support/servers.hpp"
#include "tier/cache.hpp"
#include "tier/keys.hpp"
#include "tier/sync/scan_delete.hpp"
#include "tier/uv/scan_delete.hpp"

using tiertest::Runner;

namespace {
void fill(tier::Client& c, const std::string& prefix, int n) {
  tier::Pipeline p;
  for (int i = 0; i < n; ++i) {
    p.add(tier::raw({"SET", prefix + std::to_string(i), "v"}), [](auto) {});
    if (p.size() == 1000) {
      p.run(c);
    }
  }
  p.run(c);
}

std::uint64_t run_delete(Runner& run, const std::string& pattern, tier::DeleteOptions o) {
  if (run.kind() == Runner::Kind::sync) {
    return tier::delete_by_pattern(*run.client(), pattern, o);
  }
  std::optional<tier::Result<std::uint64_t>> out;
  tier::delete_by_pattern(*run.async(), pattern, o, [&](auto r) { out.emplace(std::move(r)); });
  REQUIRE(run.loop()->run_until([&] { return out.has_value(); }, std::chrono::seconds(30)));
  return tier::unwrap(std::move(*out));
}
}  // namespace

TEST_CASE("delete_by_pattern: SCAN+UNLINK in batches, counts, progress, others untouched",
          "[scan]") {
  auto& redis = tiertest::redis();
  Runner run(GENERATE(Runner::Kind::sync, Runner::Kind::async), redis.url());
  INFO(run.name());
  tiertest::TestKeys keys(redis.client(), "scan");
  fill(redis.client(), keys("doomed:"), 5000);
  fill(redis.client(), keys("kept:"), 100);
  std::vector<std::uint64_t> progress;
  tier::DeleteOptions o;
  o.batch = 500;
  o.progress = [&](std::uint64_t n) { progress.push_back(n); };
  auto n = run_delete(run, tier::glob_escape(keys.prefix()) + "doomed:*", o);
  CHECK(n == 5000);
  CHECK(progress.size() > 5);  // many bounded steps, not one
  CHECK(progress.back() == 5000);
  CHECK(std::is_sorted(progress.begin(), progress.end()));
  auto left =
      tier::delete_by_pattern(redis.client(), tier::glob_escape(keys.prefix()) + "doomed:*");
  CHECK(left == 0);
  CHECK(redis.client().run(tier::raw({"EXISTS", keys("kept:0"), keys("kept:99")})).integer == 2);
}

TEST_CASE("delete_by_pattern: glob characters in user ids are escaped", "[scan][bad]") {
  auto& redis = tiertest::redis();
  tiertest::TestKeys keys(redis.client(), "glob");
  tier::Cache cache({.prefix = keys.prefix()});
  for (auto id : {"a*", "ab", "a?", "a[b]", "a\\"}) {
    redis.client().run(cache.set(cache.session(id, "k"), 1));
  }
  // clearing session "a*" must not touch session "ab".
  auto n = tier::delete_by_pattern(redis.client(), cache.session_pattern("a*"));
  CHECK(n == 1);
  CHECK(redis.client().run(cache.exists(cache.session("ab", "k"))));
  CHECK(tier::delete_by_pattern(redis.client(), cache.session_pattern("a[b]")) == 1);
  CHECK(redis.client().run(cache.exists(cache.session("ab", "k"))));
  CHECK(tier::delete_by_pattern(redis.client(), cache.session_pattern("a\\")) == 1);
  CHECK(redis.client().run(cache.exists(cache.session("a?", "k"))));
}

TEST_CASE("delete_by_pattern: bad arguments are refused", "[scan][bad]") {
  auto& redis = tiertest::redis();
  CHECK_THROWS_AS(tier::delete_by_pattern(redis.client(), ""), tier::InvalidArgument);
  tier::DeleteOptions o;
  o.batch = 0;
  CHECK_THROWS_AS(tier::delete_by_pattern(redis.client(), "x*", o), tier::InvalidArgument);
}
