#pragma once
// Cache-aside on the loop (docs/patterns.md): the loader completes through a callback, the
// wait for another caller's load is a loop timer, and nothing blocks the loop.

#include <functional>

#include "tier/patterns.hpp"
#include "tier/uv/async_client.hpp"

namespace tier::uv {

/// Computes a value on a miss and calls `done` once, on the loop, with it or an error.
using AsyncLoader = std::function<void(std::function<void(Result<Json>)> done)>;

/// As tier::cache_aside (tier/sync/patterns.hpp): single-flight across processes, XFetch
/// early refresh, the lease released at once when the loader fails. `done` runs once on the
/// loop. `patterns` must outlive the call.
void cache_aside(AsyncClient& client, const CachePatterns& patterns, TierKey key,
                 AsyncLoader loader, AsideOptions options, std::function<void(Result<Json>)> done);

/// Refresh-ahead on the loop: once the entry's remaining TTL is below `refresh_ratio` of its
/// TTL, `done` gets the current value at once and one refresh (one across every process: the
/// lease) runs on the loop through `loader`; a failing refresh keeps the old value and is
/// counted. A miss is an ordinary cache_aside.
void refresh_ahead(AsyncClient& client, const CachePatterns& patterns, TierKey key,
                   AsyncLoader loader, double refresh_ratio, AsideOptions options,
                   std::function<void(Result<Json>)> done);

}  // namespace tier::uv
