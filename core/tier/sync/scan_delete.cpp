#include "tier/sync/scan_delete.hpp"

namespace tier {

std::uint64_t delete_by_pattern(Client& client, const std::string& pattern,
                                const DeleteOptions& options) {
  std::uint64_t total = 0;
  std::string cursor = "0";
  do {
    ScanStep s = client.run(scan_unlink_step(cursor, pattern, options.batch));
    total += s.deleted;
    cursor = std::move(s.cursor);
    if (options.progress) {
      options.progress(total);
    }
    if (options.cancel && options.cancel->load()) {
      break;
    }
  } while (cursor != "0");
  return total;
}

}  // namespace tier
