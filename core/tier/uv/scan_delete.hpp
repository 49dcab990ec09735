#pragma once
// Pattern deletion on the loop (the steps are tier/scan_delete.hpp's): one step at a time,
// so other commands on the same connection run in between.

#include <cstdint>
#include <functional>
#include <string>

#include "tier/scan_delete.hpp"
#include "tier/uv/async_client.hpp"

namespace tier {

/// Deletes every key matching `pattern` on the loop; `done` gets the count or the first
/// error.
void delete_by_pattern(AsyncClient& client, const std::string& pattern, DeleteOptions options,
                       std::function<void(Result<std::uint64_t>)> done);

}  // namespace tier
