// tier::json (check, check_value, the top-level member lookup, unescape, parse) against
// nlohmann::json, the parser whose verdict it promises to reproduce: a text check() accepts
// must parse, and one it refuses must not (json_check.hpp). Every input is also checked
// for the reason check() gives, the depth limit, and the member it hands back.
//
// The one deliberate difference: nlohmann stops reading at a NUL byte (its lexer takes '\0'
// for the end of a C string), so it accepts `{"a":1}\0garbage`; check() refuses any NUL
// outside a string, which is the safe direction. So an input with a NUL must be refused, and
// the part before the first NUL must get the same verdict from both.
//
// tier::json::parse promises nlohmann's own result for every input, NUL included: the same
// DOM, down to each number's kind and each float's bits.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "tests/support/json_same.hpp"
#include "tier/json_check.hpp"
#include "tier/json_parse.hpp"

namespace {

using Json = nlohmann::json;
using tier::json::Problem;

// check() caps its depth limit here.
constexpr std::size_t kDepthCap = 1024;

[[noreturn]] void finding(const char* what) {
  std::fprintf(stderr, "fuzz_json_check: %s\n", what);
  std::abort();
}

void require(bool ok, const char* what) {
  if (!ok) {
    finding(what);
  }
}

std::optional<Json> reference_parse(std::string_view text) {
  Json j = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return std::nullopt;
  }
  return j;
}

// Nesting of a valid JSON text as check() counts it: a scalar is 0, an object holding an
// array 2. Counted on the text, not the DOM: a repeated key's overwritten value still counts.
std::size_t depth_of(std::string_view text) {
  std::size_t depth = 0;
  std::size_t deepest = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      deepest = std::max(deepest, ++depth);
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return deepest;
}

// A plain RFC 3629 validator, written apart from the one check() uses (tier::valid_utf8),
// to judge the invalid_utf8 verdict.
bool utf8_ok(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) {
      return false;  // truncated
    }
    for (std::size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) {
        return false;
      }
      cp = (cp << 6) | (cc & 0x3F);
    }
    const std::uint32_t min = n == 1 ? 0x80 : n == 2 ? 0x800 : 0x10000;
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

// The member lookup: for a text check() accepted, every top-level key it is asked for must
// come back as the DOM has it (the last one when a key repeats), strings decoded by
// unescape() to nlohmann's value.
void check_member(std::string_view text, const Json& dom, const std::string& key) {
  if (key.empty()) {
    return;  // an empty name means "no member"
  }
  const auto c = tier::json::check(text, kDepthCap, key);
  require(c.ok(), "check() with a member refused a text it accepted without one");
  const auto it = dom.find(key);
  require(c.member.present == (it != dom.end()), "member presence differs from the DOM");
  if (!c.member.present) {
    return;
  }
  require(c.member.is_string == it->is_string(), "member is_string differs from the DOM");
  if (c.member.is_string) {
    require(tier::json::unescape(c.member.raw) == it->get_ref<const std::string&>(),
            "unescape(member) differs from nlohmann's string");
  } else {
    const auto v = reference_parse(c.member.raw);
    require(v.has_value() && *v == *it, "the raw member value does not parse to the DOM's");
  }
}

// unescape() decodes what nlohmann's dump() writes, with and without ensure_ascii (\uXXXX
// and surrogate pairs), and check() accepts those strings.
void check_round_trip(std::string_view text) {
  const std::string s(text);
  for (bool ascii : {false, true}) {
    const std::string dumped = Json(s).dump(-1, ' ', ascii);
    const std::string_view inner(dumped.data() + 1, dumped.size() - 2);
    require(tier::json::unescape(inner) == s, "unescape(dump(s)) != s");
    const std::string object = "{\"k\":" + dumped + "}";
    const auto c = tier::json::check(object, 1, "k");
    require(c.ok() && c.member.present && c.member.is_string && c.member.raw == inner,
            "check() refused or misplaced a string nlohmann wrote");
  }
}

void run(std::string_view text) {
  const auto reference = reference_parse(text);
  const Problem value_problem = tier::json::check_value(text, kDepthCap);
  const Problem object_problem = tier::json::check(text, kDepthCap).problem;

  // The reason, whatever the verdict: invalid_utf8 exactly when the bytes are not UTF-8
  // (it comes first), never not_object from check_value().
  require((value_problem == Problem::invalid_utf8) == !utf8_ok(text),
          "check_value: invalid_utf8 verdict disagrees with the UTF-8 validator");
  require((object_problem == Problem::invalid_utf8) == !utf8_ok(text),
          "check: invalid_utf8 verdict disagrees with the UTF-8 validator");
  require(value_problem != Problem::not_object, "check_value answered not_object");

  if (!reference) {
    require(value_problem != Problem::none, "check_value accepted what nlohmann refuses");
    require(object_problem != Problem::none, "check accepted what nlohmann refuses");
    return;
  }

  const std::size_t depth = depth_of(text);
  if (depth > kDepthCap) {
    require(value_problem == Problem::too_deep && object_problem == Problem::too_deep,
            "a text nested past the cap was not too_deep");
    return;
  }
  require(value_problem == Problem::none, "check_value refused what nlohmann accepts");
  if (reference->is_object()) {
    require(object_problem == Problem::none, "check refused an object nlohmann accepts");
  } else {
    require(object_problem == Problem::not_object, "check: a non-object is not not_object");
  }

  // The depth limit is exact: the text's own depth passes, one less does not.
  require(tier::json::check_value(text, depth) == Problem::none, "refused at its own depth");
  if (depth > 0) {
    require(tier::json::check_value(text, depth - 1) == Problem::too_deep,
            "accepted one level past max_depth");
  }

  if (reference->is_object()) {
    int asked = 0;
    for (const auto& [key, value] : reference->items()) {
      if (++asked > 8) {
        break;
      }
      check_member(text, *reference, key);
    }
    check_member(text, *reference, "id");
    check_member(text, *reference, "no such key \x01");
  } else if (reference->is_string()) {
    // A top-level string: its raw contents sit between the first and the last quote.
    const auto first = text.find('"');
    const auto last = text.rfind('"');
    require(tier::json::unescape(text.substr(first + 1, last - first - 1)) ==
                reference->get_ref<const std::string&>(),
            "unescape(top-level string) differs from nlohmann's");
  }
}

}  // namespace

void check_parse(std::string_view text) {
  const auto want = reference_parse(text);
  const auto got = tier::json::parse(text, 64);
  require(got.has_value() == want.has_value(), "parse and nlohmann disagree on a verdict");
  if (got) {
    require(tiertest::same_dom(*got, *want), "parse built a DOM other than nlohmann's");
  }
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  check_parse(text);
  const auto nul = text.find('\0');
  if (nul != std::string_view::npos) {
    require(tier::json::check(text, kDepthCap).problem != Problem::none,
            "check accepted a text holding a NUL byte");
    require(tier::json::check_value(text, kDepthCap) != Problem::none,
            "check_value accepted a text holding a NUL byte");
    run(text.substr(0, nul));
  } else {
    run(text);
  }
  if (utf8_ok(text)) {
    check_round_trip(text);
  }
  return 0;
}
