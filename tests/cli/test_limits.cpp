// tierctl ratelimit and quota: the real binary against the harness's Redis, exit codes
// (5 = denied), --json fields and bad input.

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "cli/cli_runner.hpp"
#include "support/helpers.hpp"
#include "support/servers.hpp"

using tiertest::CliResult;
using tiertest::describe;
using tiertest::tierctl;
using tiertest::with;
using Json = nlohmann::json;

namespace {}  // namespace

TEST_CASE("tierctl ratelimit check: allowed, then denied with exit 5 and the reply's fields") {
  tiertest::TestKeys keys(tiertest::redis().client(), "cli_rl");
  const std::vector<std::string> check{"ratelimit", "check", "u1",       "--algo", "gcra",
                                       "--limit",   "2",     "--window", "1h",     "--json"};
  for (int i = 0; i < 2; ++i) {
    auto r = tierctl(with(keys, check));
    INFO(describe(r));
    REQUIRE(r.exit_code == 0);
    const Json j = Json::parse(r.out);
    CHECK(j["allowed"] == true);
    CHECK(j["remaining"] == 1 - i);
    CHECK(j["decision"] == "allowed");
    for (const char* f : {"limit", "retry_after_ms", "reset_after_ms"}) {
      CHECK(j.contains(f));
    }
  }
  auto denied = tierctl(with(keys, check));
  INFO(describe(denied));
  REQUIRE(denied.exit_code == 5);
  const Json j = Json::parse(denied.out);
  CHECK(j["allowed"] == false);
  CHECK(j["retry_after_ms"].get<long long>() > 0);

  // --shadow: allowed (exit 0), and says it would have been denied.
  auto shadow = tierctl(with(keys, {"ratelimit", "check", "u1", "--algo", "gcra", "--limit", "2",
                                    "--window", "1h", "--shadow", "--json"}));
  REQUIRE(shadow.exit_code == 0);
  CHECK(Json::parse(shadow.out)["decision"] == "shadow_denied");

  // status consumes nothing; reset forgets.
  auto status = tierctl(with(keys, {"ratelimit", "status", "u1", "--algo", "gcra", "--limit", "2",
                                    "--window", "1h", "--json"}));
  REQUIRE(status.exit_code == 5);
  auto reset = tierctl(
      with(keys, {"ratelimit", "reset", "u1", "--algo", "gcra", "--limit", "2", "--window", "1h"}));
  REQUIRE(reset.exit_code == 0);
  CHECK(reset.out == "reset\n");
  CHECK(tierctl(with(keys, check)).exit_code == 0);
}

TEST_CASE("tierctl ratelimit: bad input exits 2 with one line naming it") {
  tiertest::TestKeys keys(tiertest::redis().client(), "cli_rl_bad");
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  const std::vector<Case> cases{
      {{"ratelimit", "check", "u1", "--algo", "leaky", "--limit", "5"}, "--algo 'leaky'"},
      {{"ratelimit", "check", "u1", "--limit", "5", "--window", "60"}, "--window '60'"},
      {{"ratelimit", "check", "u1", "--limit", "5", "--window", "-1s"}, "--window '-1s'"},
      {{"ratelimit", "check", "u1", "--limit", "0"}, "limit must be at least 1"},
      {{"ratelimit", "check", "u1", "--limit", "5", "--cost", "6"}, "cost 6 is above the limit 5"},
      {{"ratelimit", "check", "u{1}", "--limit", "5"}, "hash tag"},
  };
  for (const auto& c : cases) {
    auto r = tierctl(with(keys, c.args));
    INFO(describe(r));
    CHECK(r.exit_code == 2);
    CHECK(r.err.find(c.says) != std::string::npos);
    CHECK(r.err.find('\n') == r.err.size() - 1);
  }
}

TEST_CASE("tierctl quota: incr, usage, enforce (exit 5), warnings, set-limit, reset") {
  tiertest::TestKeys keys(tiertest::redis().client(), "cli_quota");
  auto r = tierctl(with(keys, {"quota", "incr", "u1", "api_calls", "85", "--daily-limit", "100",
                               "--channel", "", "--json"}));
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  Json j = Json::parse(r.out);
  CHECK(j["allowed"] == true);
  CHECK(j["daily"]["used"] == 85);
  CHECK(j["daily"]["limit"] == 100);
  CHECK(j["daily"]["ratio"] == 0.85);
  CHECK(j["monthly"]["used"] == 85);
  CHECK(j["monthly"]["ratio"].is_null());  // no monthly limit
  REQUIRE(j["warnings"].size() == 1);
  CHECK(j["warnings"][0]["threshold"] == 0.8);

  auto refused = tierctl(with(keys, {"quota", "incr", "u1", "api_calls", "20", "--daily-limit",
                                     "100", "--enforce", "--json"}));
  REQUIRE(refused.exit_code == 5);
  CHECK(Json::parse(refused.out)["daily"]["used"] == 85);

  REQUIRE(tierctl(with(keys, {"quota", "set-limit", "u1", "daily", "1000"})).exit_code == 0);
  auto usage = tierctl(with(keys, {"quota", "usage", "u1", "api_calls", "--json"}));
  REQUIRE(usage.exit_code == 0);
  CHECK(Json::parse(usage.out)["daily"]["limit"] == 1000);
  CHECK(tierctl(with(keys, {"quota", "set-limit", "u1", "daily"})).exit_code == 2);
  REQUIRE(tierctl(with(keys, {"quota", "set-limit", "u1", "daily", "--clear"})).exit_code == 0);

  REQUIRE(tierctl(with(keys, {"quota", "reset", "u1", "api_calls"})).exit_code == 0);
  auto after = tierctl(with(keys, {"quota", "usage", "u1", "api_calls", "--json"}));
  CHECK(Json::parse(after.out)["daily"]["used"] == 0);

  auto bad = tierctl(with(keys, {"quota", "incr", "u1", "api calls"}));
  CHECK(bad.exit_code == 2);
  CHECK(bad.err.find("quota metric") != std::string::npos);
}
