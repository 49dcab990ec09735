// tier::json::parse against nlohmann::json::parse: the same DOM down to each number's kind
// (unsigned, integer, float) and each float's bits, or the same refusal, on written edge
// cases and on random texts (spelled with whitespace, escapes, repeated keys and every
// number form), whole and with a byte changed.
#include <catch2/catch.hpp>

#include <random>
#include <string>
#include <vector>

#include "support/json_same.hpp"
#include "tier/json_parse.hpp"

namespace {

using Json = nlohmann::json;

// The verdict of both parsers on `text` agrees, and so does the DOM.
void agrees(const std::string& text) {
  INFO("text: " << text);
  const Json want = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  const std::optional<Json> got = tier::json::parse(text);
  REQUIRE(got.has_value() == !want.is_discarded());
  if (got) {
    REQUIRE(tiertest::same_dom(*got, want));
  }
}

std::string pick(std::mt19937& rng, const std::vector<std::string>& from) {
  return from[std::uniform_int_distribution<std::size_t>(0, from.size() - 1)(rng)];
}

std::string ws(std::mt19937& rng) {
  return pick(rng, {"", "", "", " ", "\n", "\t ", "\r\n  "});
}

std::string random_text(std::mt19937& rng, int depth) {
  static const std::vector<std::string> numbers{"0",
                                                "-0",
                                                "1",
                                                "-1",
                                                "42",
                                                "0.5",
                                                "-0.0",
                                                "1e2",
                                                "1E+2",
                                                "1e-2",
                                                "2.5E-3",
                                                "1e308",
                                                "1e-400",
                                                "4.9e-324",
                                                "123456789012345678901234567890",
                                                "-9223372036854775808",
                                                "-9223372036854775809",
                                                "18446744073709551615",
                                                "18446744073709551616",
                                                "9223372036854775807",
                                                "0.1000000000000000055511151231257827",
                                                "-1.5e+10"};
  static const std::vector<std::string> strings{"\"\"",
                                                "\"plain\"",
                                                "\"a\\\"b\"",
                                                "\"\\\\\"",
                                                "\"\\/\\b\\f\\n\\r\\t\"",
                                                "\"\\u0041\\u00e9\"",
                                                "\"\\ud83d\\ude00\"",
                                                "\"é€😀\"",
                                                "\"\\u0000x\"",
                                                "\"key\"",
                                                "\"k\""};
  const int kind = std::uniform_int_distribution<int>(0, depth > 4 ? 5 : 7)(rng);
  switch (kind) {
    case 0:
      return pick(rng, {"true", "false", "null"});
    case 1:
    case 2:
      return pick(rng, numbers);
    case 3:
    case 4:
    case 5:
      return pick(rng, strings);
    case 6: {
      std::string s = "[" + ws(rng);
      const int n = std::uniform_int_distribution<int>(0, 4)(rng);
      for (int i = 0; i < n; ++i) {
        s += (i ? "," : "") + ws(rng) + random_text(rng, depth + 1) + ws(rng);
      }
      return s + "]";
    }
    default: {
      std::string s = "{" + ws(rng);
      const int n = std::uniform_int_distribution<int>(0, 4)(rng);
      for (int i = 0; i < n; ++i) {
        // Few keys, so that some repeat: the last one must win.
        s += (i ? "," : "") + ws(rng) + pick(rng, strings) + ws(rng) + ":" + ws(rng) +
             random_text(rng, depth + 1) + ws(rng);
      }
      return s + "}";
    }
  }
}

}  // namespace

TEST_CASE("json::parse builds nlohmann's DOM for written cases", "[json]") {
  for (const char* text : {"{}",
                           "[]",
                           "0",
                           "-0",
                           "\"x\"",
                           "true",
                           " null ",
                           "{\"a\":1,\"a\":2}",
                           "{\"a\":{\"b\":[1,2,{\"c\":null}]},\"d\":-3.5e-7}",
                           "18446744073709551615",
                           "18446744073709551616",
                           "-9223372036854775808",
                           "-9223372036854775809",
                           "1e-400",
                           "-1e-400",
                           "4.9e-324",
                           "2.2250738585072011e-308",
                           "1.7976931348623157e308",
                           "\xEF\xBB\xBF{\"bom\":true}",
                           "\"\\ud83d\\ude00 \\u00e9\\n\"",
                           "[1,[2,[3,[4]]]]"}) {
    agrees(text);
  }
  // Not JSON: nlohmann refuses them all, and so does parse.
  for (const char* text : {"", "{", "[1,]", "{\"a\"}", "01", "1.", "1e400", "\"\\x\"", "\"\xff\"",
                           "nul", "[1] [2]", "\"\\ud800\""}) {
    agrees(text);
  }
  // A NUL ends nlohmann's input: what follows it is ignored, here too.
  agrees(std::string("{\"a\":1}\0garbage", 15));
}

TEST_CASE("json::parse hands values deeper than its limit to nlohmann", "[json]") {
  const std::string deep = std::string(600, '[') + "1" + std::string(600, ']');
  const auto got = tier::json::parse(deep, 512);
  REQUIRE(got.has_value());
  REQUIRE(tiertest::same_dom(*got, Json::parse(deep)));
}

TEST_CASE("json::parse agrees with nlohmann on random texts", "[json]") {
  std::mt19937 rng(20261129);
  for (int i = 0; i < 20000; ++i) {
    std::string text = ws(rng) + random_text(rng, 0) + ws(rng);
    agrees(text);
    // The same text with one byte changed: mostly not JSON any more, sometimes another
    // valid text.
    if (!text.empty()) {
      std::size_t at = std::uniform_int_distribution<std::size_t>(0, text.size() - 1)(rng);
      text[at] = pick(rng, {"\"", "\\", ",", "]", "}", "0", "e", "-", " ", "\x01"})[0];
      agrees(text);
    }
  }
}
