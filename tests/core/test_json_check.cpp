// The one-pass JSON validator (core/tier/json_check): a valid/invalid corpus, the reasons
// and their order, the envelope member, and agreement with nlohmann::json (the DOM parser
// handlers get their body from) on a corpus and on random mutations of it.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <random>
#include <string>
#include <vector>

#include "tier/json_check.hpp"
#include "tier/keys.hpp"

using tier::json::check;
using tier::json::Problem;

namespace {

constexpr std::size_t kDepth = 64;

Problem problem(const std::string& s, std::size_t depth = kDepth) {
  return check(s, depth).problem;
}

// What nlohmann decides about a text that is valid UTF-8 and not too deep.
Problem reference(const std::string& s) {
  auto j = nlohmann::json::parse(s, nullptr, false);
  if (j.is_discarded()) {
    return Problem::not_json;
  }
  return j.is_object() ? Problem::none : Problem::not_object;
}

std::string nest(std::size_t n) {
  return std::string(n, '[') + std::string(n, ']');
}

}  // namespace

TEST_CASE("json_check: valid objects") {
  const std::vector<std::string> ok{
      "{}",
      " \t\r\n{ } \n",
      R"({"a":1})",
      R"({"a":-0,"b":0.5,"c":1e10,"d":1E-10,"e":-12.5e+3,"f":123456789012345678901234567890})",
      R"({"a":true,"b":false,"c":null,"d":[],"e":{},"f":[1,[2,[3]]]})",
      R"({"s":"\"\\\/\b\f\n\r\t"})",
      R"({"u":"\u0000\u00e9\u20AC\uD83D\uDE00"})",
      "{\"utf8\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\x7f\"}",
      R"({"dup":1,"dup":2})",
      R"({"tiny":1e-400,"small":-4.9e-324,"big":1.7976931348623157e308})",
      "\xef\xbb\xbf{}",  // a byte order mark is ignored
      R"({"a" : [ 1 , 2 ] , "b" : { "c" : "d" } })",
  };
  for (const auto& s : ok) {
    INFO(s);
    CHECK(check(s, kDepth).ok());
    CHECK(reference(s) == Problem::none);
  }
}

TEST_CASE("json_check: not JSON") {
  const std::vector<std::string> bad{
      "",
      " ",
      "{",
      "}",
      "{\"a\"}",
      "{\"a\":}",
      "{\"a\":1,}",
      "{,}",
      "{\"a\":1 \"b\":2}",
      "{a:1}",
      "{'a':1}",
      "{\"a\":[1,]}",
      "{\"a\":[1 2]}",
      "{\"a\":01}",
      "{\"a\":1.}",
      "{\"a\":.5}",
      "{\"a\":-}",
      "{\"a\":+1}",
      "{\"a\":1e}",
      "{\"a\":1e+}",
      "{\"a\":0x10}",
      "{\"a\":NaN}",
      "{\"a\":Infinity}",
      "{\"a\":1e400}",
      "{\"a\":-1e400}",
      "{\"a\":tru}",
      "{\"a\":nul}",
      "{\"a\":True}",
      "{\"a\":\"x}",
      "{\"a\":\"\\x\"}",
      "{\"a\":\"\\u12\"}",
      "{\"a\":\"\\u12G4\"}",
      "{\"a\":\"\\uD800\"}",         // lone high surrogate
      "{\"a\":\"\\uD800x\"}",        // high surrogate, then no escape
      "{\"a\":\"\\uD800\\u0041\"}",  // high surrogate, then no low half
      "{\"a\":\"\\uDC00\"}",         // lone low surrogate
      "{\"a\":\"\\uDC00\\uD800\"}",  // the halves reversed
      std::string("{\"a\":\"\x01\"}"),
      std::string("{\"a\":\"tab\there\"}"),
      std::string("{\"a\":\"nl\nhere\"}"),
      std::string("{\"a\":\"\0\"}", 8),
      "{} {}",
      "{}x",
      "{}]",
      "{\"a\":1}}",
      "// c\n{}",
      "{/* c */}",
      "[1,2",
  };
  for (const auto& s : bad) {
    INFO(tier::excerpt(s));
    CHECK(problem(s) == Problem::not_json);
    CHECK(reference(s) == Problem::not_json);
  }
}

TEST_CASE("json_check: a NUL after the text is garbage") {
  // nlohmann stops reading at a NUL; RFC 8259 has no such rule, so it is refused.
  CHECK(problem(std::string("{}\0", 3)) == Problem::not_json);
  CHECK(problem(std::string("{\"a\":1}\0{", 9)) == Problem::not_json);
}

TEST_CASE("json_check: valid JSON that is not an object") {
  for (std::string s : {"[]", "[1,2]", "1", "-0.5e3", "\"str\"", "true", "false", "null", " 7 "}) {
    INFO(s);
    CHECK(problem(s) == Problem::not_object);
    CHECK(reference(s) == Problem::not_object);
  }
}

TEST_CASE("json_check: invalid UTF-8 wins over every other reason") {
  const std::vector<std::string> bad{
      "{\"a\":\"\xff\"}",
      "{\"a\":\"\xc0\xaf\"}",          // overlong '/'
      "{\"a\":\"\xe0\x80\xaf\"}",      // overlong, 3 bytes
      "{\"a\":\"\xf0\x80\x80\xaf\"}",  // overlong, 4 bytes
      "{\"a\":\"\xed\xa0\x80\"}",      // an encoded surrogate
      "{\"a\":\"\xf4\x90\x80\x80\"}",  // past U+10FFFF
      "{\"a\":\"\xc3\"}",              // truncated
      "{\"a\":\"\xe2\x82\"}",          // truncated
      "{\"a\":\"\x80\"}",              // a lone continuation byte
      "{\"a\":1}\xff",                 // after the value
      "\xff{}",                        // before it
      "{\"\xfe\":1}",                  // in a key
      "[[[[ \xff",                     // besides a grammar error
      nest(100) + "\"\xc3\x28\"",      // besides nesting
      std::string("{\"a\":\"\xc3\"") + "}",
  };
  for (const auto& s : bad) {
    INFO(tier::excerpt(s));
    CHECK(problem(s) == Problem::invalid_utf8);
    CHECK_FALSE(tier::valid_utf8(s));
  }
}

TEST_CASE("json_check: nesting limit") {
  CHECK(problem("{\"a\":" + nest(63) + "}") == Problem::none);      // depth 64
  CHECK(problem("{\"a\":" + nest(64) + "}") == Problem::too_deep);  // depth 65
  CHECK(problem(nest(64)) == Problem::not_object);                  // deep, but allowed
  CHECK(problem(nest(65)) == Problem::too_deep);
  CHECK(problem(std::string(100000, '[')) == Problem::too_deep);  // never closed
  CHECK(problem(std::string(100000, '{')) == Problem::too_deep);
  // Brackets inside strings do not count.
  CHECK(problem("{\"a\":\"" + std::string(500, '[') + "\"}") == Problem::none);
  // too_deep outranks a grammar error that comes first.
  CHECK(problem("{\"a\":x," + nest(80) + "}") == Problem::too_deep);
  // The limit is a parameter.
  CHECK(problem("{\"a\":{\"b\":{}}}", 3) == Problem::none);
  CHECK(problem("{\"a\":{\"b\":{}}}", 2) == Problem::too_deep);
  CHECK(problem("{}", 0) == Problem::too_deep);
}

TEST_CASE("json_check: huge strings and numbers") {
  const std::string big(5 * 1024 * 1024, 'x');
  CHECK(problem("{\"a\":\"" + big + "\"}") == Problem::none);
  CHECK(problem("{\"a\":\"" + big + "}") == Problem::not_json);  // unterminated
  std::string utf;
  for (int i = 0; i < 100000; ++i) {
    utf += "\xe2\x82\xac\xf0\x9f\x98\x80\\n\\u00e9";
  }
  CHECK(problem("{\"a\":\"" + utf + "\"}") == Problem::none);
  const std::string digits(400, '9');
  CHECK(problem("{\"a\":" + digits + "}") == Problem::not_json);  // past a double
  CHECK(reference("{\"a\":" + digits + "}") == Problem::not_json);
  CHECK(problem("{\"a\":0." + digits + "}") == Problem::none);
  CHECK(problem("{\"a\":" + std::string(300, '9') + "}") == Problem::none);
  CHECK(problem("{\"a\":0.000001e310}") == Problem::none);
  CHECK(problem("{\"a\":1000e306}") == Problem::not_json);
  CHECK(problem("{\"a\":1e99999999999999999999}") == Problem::not_json);
  CHECK(problem("{\"a\":1e-99999999999999999999}") == Problem::none);
}

TEST_CASE("json_check: the top-level member") {
  auto m = check(R"({"x":{"id":5},"id":"abc","y":1})", kDepth, "id").member;
  CHECK(m.present);
  CHECK(m.is_string);
  CHECK(m.raw == "abc");

  m = check(R"({"id":12.5e1 , "z":0})", kDepth, "id").member;
  CHECK(m.present);
  CHECK_FALSE(m.is_string);
  CHECK(m.raw == "12.5e1");

  m = check(R"({"id":{"a":[1]}})", kDepth, "id").member;
  CHECK(m.present);
  CHECK_FALSE(m.is_string);
  CHECK(m.raw == R"({"a":[1]})");

  m = check(R"({"id":"a","id":["b"]})", kDepth, "id").member;  // the last one counts
  CHECK_FALSE(m.is_string);

  m = check(R"({"\u0069d":"esc\"aped\u00e9"})", kDepth, "id").member;
  REQUIRE(m.present);
  CHECK(tier::json::unescape(m.raw) == "esc\"aped\xc3\xa9");

  CHECK_FALSE(check(R"({"a":{"id":"nested"}})", kDepth, "id").member.present);
  CHECK_FALSE(check(R"({"idx":"1"})", kDepth, "id").member.present);
  CHECK_FALSE(check(R"({"id":"x",})", kDepth, "id").member.present);  // refused text
  CHECK_FALSE(check(R"({"id":"x"})", kDepth).member.present);         // not asked for

  CHECK(tier::json::unescape(R"(\ud83d\ude00\t\/)") == "\xf0\x9f\x98\x80\t/");
}

TEST_CASE("json_check: agrees with nlohmann on random mutations") {
  const std::vector<std::string> seeds{
      R"({"id":"bench-000000001","ts":1764300000.123,"project_id":"proj-0042","tags":["a","b"]})",
      R"({"a":[1,-2.5e3,true,false,null,{"b":"\u00e9\ud83d\ude00\n"}],"c":{}})",
      "{\"k\":\"\xc3\xa9\xe2\x82\xac\",\"n\":0}",
  };
  const std::string alphabet =
      std::string("{}[]\",:.-+eE0123456789tfnul\\/ \tabx\x01\x7f\xc3\xa9\xff") + '\0';
  std::mt19937 rng(20261128);
  int accepted = 0;
  for (int i = 0; i < 60000; ++i) {
    std::string s = seeds[rng() % seeds.size()];
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits && !s.empty(); ++e) {
      const std::size_t at = rng() % s.size();
      switch (rng() % 3) {
        case 0:
          s[at] = alphabet[rng() % alphabet.size()];
          break;
        case 1:
          s.erase(at, 1);
          break;
        default:
          s.insert(at, 1, alphabet[rng() % alphabet.size()]);
          break;
      }
    }
    Problem want = reference(s);
    if (s.find('\0') != std::string::npos) {
      // nlohmann stops at a NUL as at the end of the input; check refuses it (header).
      want = Problem::not_json;
    }
    if (!tier::valid_utf8(s)) {
      want = Problem::invalid_utf8;
    }
    const Problem got = problem(s);
    INFO(tier::excerpt(s, 200));
    REQUIRE(got == want);
    accepted += got == Problem::none ? 1 : 0;
  }
  CHECK(accepted > 1000);  // the mutations exercise the accepting paths too
}

TEST_CASE("json_check: reason strings") {
  CHECK(std::string(tier::json::reason(Problem::not_json)) == "not_json");
  CHECK(std::string(tier::json::reason(Problem::not_object)) == "not_object");
  CHECK(std::string(tier::json::reason(Problem::invalid_utf8)) == "invalid_utf8");
  CHECK(std::string(tier::json::reason(Problem::too_deep)) == "too_deep");
  CHECK(std::string(tier::json::reason(Problem::none)).empty());
}
