#pragma once
// Pattern deletion: SCAN + UNLINK in bounded steps (core/lua/scan_unlink.lua), never
// KEYS. The runners are tier/sync/scan_delete.hpp (blocking) and tier/uv/scan_delete.hpp
// (on the loop). Each step is one short script, so Redis and the loop stay responsive between
// steps, and other commands on the same connection run in between.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "tier/op.hpp"

namespace tier {

struct ScanStep {
  std::string cursor;     ///< "0" when the scan is complete
  std::uint64_t deleted;  ///< keys unlinked by this step
};

struct DeleteOptions {
  /// COUNT hint of each SCAN step: keys examined per step.
  std::uint32_t batch = 1000;
  /// Called after each step with the running total (may be empty).
  std::function<void(std::uint64_t deleted_so_far)> progress;
  /// Set to true to stop after the current step (async); the count so far is returned.
  std::shared_ptr<std::atomic<bool>> cancel;
};

/// One step from `cursor`.
Op<ScanStep> scan_unlink_step(const std::string& cursor, const std::string& pattern,
                              std::uint32_t batch);

/// Why `pattern` and `batch` cannot be scanned (empty or over-long pattern, batch outside
/// 1-100000), or nothing. The runners check it before their first step.
std::optional<Error> check_delete_pattern(const std::string& pattern, std::uint32_t batch);

}  // namespace tier
