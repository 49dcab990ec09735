// tier::json::dump against nlohmann's own dump() on random documents: the same bytes, or
// the same exception (a string that is not UTF-8), and nothing appended on an exception.
#include <catch2/catch.hpp>

#include <limits>
#include <random>
#include <string>

#include "tier/json_dump.hpp"

namespace {

using Json = nlohmann::json;

std::string random_string(std::mt19937& rng, bool allow_invalid) {
  static const std::vector<std::string> pieces{
      "a",  "plain text ", "\"",   "\\",     "/",    "\b", "\f", "\n",
      "\r", "\t",          "\x01", "\x1f",   "\x7f", "é",  "€",  "\xf0\x9f\x98\x80",
      "ü",  " ",           "{}",   "\\u0041"};
  static const std::vector<std::string> invalid{"\xc0\xaf", "\xed\xa0\x80", "\xff",
                                                "\xe2\x82", "\x80",         "\xf4\x90\x80\x80"};
  std::string s;
  const int n = std::uniform_int_distribution<int>(0, 12)(rng);
  for (int i = 0; i < n; ++i) {
    if (allow_invalid && std::uniform_int_distribution<int>(0, 40)(rng) == 0) {
      s += invalid[std::uniform_int_distribution<std::size_t>(0, invalid.size() - 1)(rng)];
    } else {
      s += pieces[std::uniform_int_distribution<std::size_t>(0, pieces.size() - 1)(rng)];
    }
  }
  return s;
}

Json random_value(std::mt19937& rng, int depth, bool allow_invalid) {
  const int kind = std::uniform_int_distribution<int>(0, depth > 3 ? 7 : 9)(rng);
  switch (kind) {
    case 0:
      return nullptr;
    case 1:
      return std::uniform_int_distribution<int>(0, 1)(rng) == 1;
    case 2: {
      static const std::vector<std::int64_t> ints{0,
                                                  -1,
                                                  1,
                                                  42,
                                                  std::numeric_limits<std::int64_t>::min(),
                                                  std::numeric_limits<std::int64_t>::max()};
      return ints[std::uniform_int_distribution<std::size_t>(0, ints.size() - 1)(rng)];
    }
    case 3:
      return std::uniform_int_distribution<std::uint64_t>()(rng);
    case 4: {
      static const std::vector<double> floats{0.0,
                                              -0.0,
                                              0.1,
                                              1e300,
                                              -2.5e-308,
                                              3.14159,
                                              1e21,
                                              std::numeric_limits<double>::quiet_NaN(),
                                              std::numeric_limits<double>::infinity()};
      return floats[std::uniform_int_distribution<std::size_t>(0, floats.size() - 1)(rng)];
    }
    case 5:
    case 6:
    case 7:
      return random_string(rng, allow_invalid);
    case 8: {
      Json a = Json::array();
      const int n = std::uniform_int_distribution<int>(0, 4)(rng);
      for (int i = 0; i < n; ++i) {
        a.push_back(random_value(rng, depth + 1, allow_invalid));
      }
      return a;
    }
    default: {
      Json o = Json::object();
      const int n = std::uniform_int_distribution<int>(0, 4)(rng);
      for (int i = 0; i < n; ++i) {
        o[random_string(rng, allow_invalid)] = random_value(rng, depth + 1, allow_invalid);
      }
      return o;
    }
  }
}

}  // namespace

TEST_CASE("json::dump writes what nlohmann's dump() writes, or throws what it throws") {
  std::mt19937 rng(20261129);
  int thrown = 0;
  for (int i = 0; i < 20000; ++i) {
    const Json v = random_value(rng, 0, /*allow_invalid=*/i % 2 == 1);
    std::string want;
    int want_error = 0;
    try {
      want = v.dump();
    } catch (const Json::type_error& e) {
      want_error = e.id;
    }
    std::string got = "prefix:";
    int got_error = 0;
    try {
      tier::json::dump(v, got);
    } catch (const Json::type_error& e) {
      got_error = e.id;
    }
    INFO(i);
    REQUIRE(got_error == want_error);
    if (want_error == 0) {
      REQUIRE(got == "prefix:" + want);
    } else {
      ++thrown;
      REQUIRE(got == "prefix:");  // nothing appended
    }
  }
  CHECK(thrown > 100);  // the invalid strings were exercised
  CHECK(tier::json::dump(Json("tab\there \"q\" \x01")) == R"("tab\there \"q\" \u0001")");
}
