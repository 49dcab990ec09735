#include <catch2/catch.hpp>

#include "tier/cache.hpp"
#include "tier/keys.hpp"

TEST_CASE("check_id", "[keys][unit][bad]") {
  CHECK_FALSE(tier::check_id("user-42", "user_id"));
  CHECK_FALSE(tier::check_id("λ:ok", "user_id"));
  CHECK(tier::check_id("", "user_id")->message == "user_id is empty");
  CHECK_THAT(tier::check_id("a\tb", "user_id")->message, Catch::Contains("control character"));
  CHECK_THAT(tier::check_id("a\x7f", "x")->message, Catch::Contains("control character"));
  CHECK_THAT(tier::check_id(std::string(513, 'a'), "x")->message, Catch::Contains("512"));
  CHECK_THAT(tier::check_id("\xc0\xaf", "x")->message, Catch::Contains("UTF-8"));      // overlong
  CHECK_THAT(tier::check_id("\xed\xa0\x80", "x")->message, Catch::Contains("UTF-8"));  // surrogate
  CHECK_THAT(tier::check_id("\xe2\x82", "x")->message, Catch::Contains("UTF-8"));      // truncated
}

TEST_CASE("glob_escape and excerpt", "[keys][unit]") {
  CHECK(tier::glob_escape("a*b?c[d]e\\f") == "a\\*b\\?c\\[d\\]e\\\\f");
  CHECK(tier::glob_escape("plain") == "plain");
  CHECK(tier::excerpt("a\nb\x01") == "a\\x0ab\\x01");
  CHECK(tier::excerpt(std::string(200, 'x'), 10).size() == 13);
}

TEST_CASE("tier names", "[keys][unit]") {
  CHECK(tier::parse_tier("session") == tier::Tier::session);
  CHECK(tier::parse_tier("global") == tier::Tier::global);
  CHECK_FALSE(tier::parse_tier("Session"));
  tier::Cache c({.prefix = "ns:"});
  CHECK(c.session_pattern("a*") == "ns:session:a\\*:*");
  CHECK(c.project("p", "k").key == "ns:project:p:k");
}
