#include "tier/scan_delete.hpp"

#include "tier/keys.hpp"

namespace tier {

std::optional<Error> check_delete_pattern(const std::string& pattern, std::uint32_t batch) {
  if (pattern.empty()) {
    return Error{ErrorKind::invalid, "pattern is empty"};
  }
  if (pattern.size() > 4096) {
    return Error{ErrorKind::invalid, "pattern is longer than 4096 bytes"};
  }
  if (batch == 0 || batch > 100000) {
    return Error{ErrorKind::invalid, "batch must be between 1 and 100000"};
  }
  return std::nullopt;
}

Op<ScanStep> scan_unlink_step(const std::string& cursor, const std::string& pattern,
                              std::uint32_t batch) {
  if (auto bad = check_delete_pattern(pattern, batch)) {
    return Op<ScanStep>::fail(*bad);
  }
  return single<ScanStep>(
      Command::eval(script("scan_unlink"), {}, {cursor, pattern, std::to_string(batch)}),
      [pattern](Reply&& r) -> Result<ScanStep> {
        if (!r.is_array() || r.elements.size() != 2 || !r.elements[1].is_integer()) {
          return reply_error(r, "scan_unlink '" + excerpt(pattern) + "'");
        }
        return ScanStep{std::move(r.elements[0].str),
                        static_cast<std::uint64_t>(r.elements[1].integer)};
      });
}

}  // namespace tier
