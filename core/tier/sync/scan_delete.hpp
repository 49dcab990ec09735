#pragma once
// Pattern deletion with the blocking client (the steps are tier/scan_delete.hpp's).

#include <cstdint>
#include <string>

#include "tier/scan_delete.hpp"
#include "tier/sync/client.hpp"

namespace tier {

/// Deletes every key matching `pattern`; returns how many. Throws on failure.
std::uint64_t delete_by_pattern(Client& client, const std::string& pattern,
                                const DeleteOptions& options = {});

}  // namespace tier
