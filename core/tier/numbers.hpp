#pragma once
// The one strict integer parser: decimal digits with an optional leading '-', the whole
// text, in range for T (std::from_chars: no locale, no whitespace, no '+', no overflow).

#include <charconv>
#include <optional>
#include <string_view>
#include <system_error>

namespace tier {

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

}  // namespace tier
