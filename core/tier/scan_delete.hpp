#pragma once
// Pattern deletion: SCAN + UNLINK in bounded steps (core/lua/scan_unlink.lua), never
// KEYS. Each step is one short script, so Redis and the loop stay responsive between
// steps, and other commands on the same connection run in between.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "tier/op.hpp"

namespace tier {

class Client;
class AsyncClient;

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

/// Deletes every key matching `pattern`; returns how many. Throws on failure.
std::uint64_t delete_by_pattern(Client& client, const std::string& pattern,
                                const DeleteOptions& options = {});

/// The same on the loop; `done` gets the count or the first error.
void delete_by_pattern(AsyncClient& client, const std::string& pattern, DeleteOptions options,
                       std::function<void(Result<std::uint64_t>)> done);

}  // namespace tier
