#include "tier/json_parse.hpp"

#include <locale.h>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <system_error>

#include "tier/json_check.hpp"

namespace tier::json {

namespace {

using Json = nlohmann::json;

// A DOM from a text check_value() accepted: the grammar is known to hold, so the builder
// only has to tell the values apart. Recursion is bounded by the depth check_value allowed.
class Builder {
 public:
  Builder(const char* p, const char* end) : p_(p), end_(end) {}

  Json value() {
    ws();
    switch (*p_) {
      case '{':
        return object();
      case '[':
        return array();
      case '"':
        return Json(string());
      case 't':
        p_ += 4;
        return Json(true);
      case 'f':
        p_ += 5;
        return Json(false);
      case 'n':
        p_ += 4;
        return Json(nullptr);
      default:
        return number();
    }
  }

 private:
  void ws() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) {
      ++p_;
    }
  }

  Json object() {
    ++p_;  // '{'
    Json out = Json::object();
    ws();
    if (*p_ == '}') {
      ++p_;
      return out;
    }
    for (;;) {
      ws();
      std::string key = string();
      ws();
      ++p_;  // ':'
      // The last of repeated keys wins, as in nlohmann's DOM parser.
      out[std::move(key)] = value();
      ws();
      if (*p_++ == '}') {
        return out;
      }
    }
  }

  Json array() {
    ++p_;  // '['
    Json out = Json::array();
    ws();
    if (*p_ == ']') {
      ++p_;
      return out;
    }
    for (;;) {
      out.push_back(value());
      ws();
      if (*p_++ == ']') {
        return out;
      }
    }
  }

  std::string string() {
    const char* start = ++p_;  // past the opening quote
    bool escaped = false;
    while (*p_ != '"') {
      if (*p_ == '\\') {
        escaped = true;
        ++p_;  // the escaped byte, a quote included
      }
      ++p_;
    }
    const std::string_view raw(start, static_cast<std::size_t>(p_ - start));
    ++p_;
    return escaped ? unescape(raw) : std::string(raw);
  }

  // nlohmann's number kinds: a non-negative integer is unsigned, a negative one an integer,
  // and one with a fraction or an exponent, or out of 64-bit range, a float.
  Json number() {
    const char* start = p_;
    bool is_float = false;
    while (p_ < end_) {
      const char c = *p_;
      if (c == '.' || c == 'e' || c == 'E') {
        is_float = true;
      } else if ((c < '0' || c > '9') && c != '-' && c != '+') {
        break;
      }
      ++p_;
    }
    if (!is_float) {
      if (*start == '-') {
        std::int64_t v = 0;
        if (std::from_chars(start, p_, v).ec == std::errc()) {
          return Json(v);
        }
      } else {
        std::uint64_t v = 0;
        if (std::from_chars(start, p_, v).ec == std::errc()) {
          return Json(v);
        }
      }
    }
    double d = 0;
    if (std::from_chars(start, p_, d).ec == std::errc()) {
      return Json(d);
    }
    // Out of range for from_chars: an underflow (check_value refused overflows), which
    // strtod rounds to zero or a subnormal as nlohmann does; in the C locale, whatever
    // locale the process runs in.
    static const locale_t c_locale = newlocale(LC_ALL_MASK, "C", locale_t{});
    const std::string token(start, p_);
    return Json(c_locale != locale_t{} ? strtod_l(token.c_str(), nullptr, c_locale)
                                       : std::strtod(token.c_str(), nullptr));
  }

  const char* p_;
  const char* end_;
};

}  // namespace

std::optional<Json> parse(std::string_view text, std::size_t max_depth) {
  if (check_value(text, max_depth) != Problem::none) {
    Json j = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
      return std::nullopt;
    }
    return j;
  }
  std::size_t skip = 0;
  if (text.size() >= 3 && text.compare(0, 3, "\xEF\xBB\xBF") == 0) {
    skip = 3;  // a byte order mark, which check_value accepted
  }
  return Builder(text.data() + skip, text.data() + text.size()).value();
}

}  // namespace tier::json
