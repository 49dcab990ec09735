#pragma once
// The strict number parsers: the whole text, no locale, no whitespace, no '+', no overflow
// (std::from_chars underneath).

#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string_view>
#include <system_error>

namespace tier {

/// Decimal digits with an optional leading '-', in range for T.
template <class T>
std::optional<T> parse_integer(std::string_view s) {
  T value{};
  const char* end = s.data() + s.size();
  const auto [ptr, ec] = std::from_chars(s.data(), end, value, 10);
  if (s.empty() || ec != std::errc() || ptr != end) {
    return std::nullopt;
  }
  return value;
}

/// A finite decimal number ("0.8", "1", "1e-3").
inline std::optional<double> parse_double(std::string_view s) {
  double value = 0;
  const char* end = s.data() + s.size();
  const auto [ptr, ec] = std::from_chars(s.data(), end, value);
  if (s.empty() || ec != std::errc() || ptr != end || !std::isfinite(value)) {
    return std::nullopt;
  }
  return value;
}

/// A duration as people write it: an integer and a unit, "500ms", "60s", "1m", "1h", "1d"
/// (a bare number is refused: the unit is never guessed). Positive, at most 10 years.
inline std::optional<std::chrono::milliseconds> parse_duration(std::string_view s) {
  std::size_t digits = 0;
  while (digits < s.size() && s[digits] >= '0' && s[digits] <= '9') {
    ++digits;
  }
  const auto n = parse_integer<std::int64_t>(s.substr(0, digits));
  const std::string_view unit = s.substr(digits);
  std::int64_t scale = 0;
  if (unit == "ms") {
    scale = 1;
  } else if (unit == "s") {
    scale = 1000;
  } else if (unit == "m") {
    scale = 60 * 1000;
  } else if (unit == "h") {
    scale = 3600 * 1000;
  } else if (unit == "d") {
    scale = 86400 * 1000;
  }
  constexpr std::int64_t kMax = 10LL * 365 * 86400 * 1000;
  if (!n || scale == 0 || *n <= 0 || *n > kMax / scale) {
    return std::nullopt;
  }
  return std::chrono::milliseconds(*n * scale);
}

}  // namespace tier
