#pragma once
// Cache patterns with the blocking Client (docs/patterns.md): the loader is a callable run
// in the caller's thread; refresh-ahead refreshes on a small bounded pool of its own.

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "tier/patterns.hpp"
#include "tier/sync/client.hpp"
#include "tier/writebehind.hpp"

namespace tier {

/// Computes a value on a miss; throws to say it failed (nothing is stored then).
using Loader = std::function<Json()>;

/// Cache-aside: a hit returns the value; on a miss exactly one caller across every process
/// runs `loader` while the others wait (single-flight). A loader that throws releases the
/// lease at once and its exception reaches the caller. A hit whose XFetch draw says the
/// entry is about to expire is recomputed early by the one caller that drew it (its loader
/// failing keeps the old value, counted as a load failure).
Json cache_aside(Client& client, const CachePatterns& patterns, const TierKey& key,
                 const Loader& loader, const AsideOptions& options = {});

/// Write-through: `persist` first (it throws to fail); the cache is set only after it
/// succeeded, else left untouched and the exception passed on.
void write_through(Client& client, const CachePatterns& patterns, const TierKey& key,
                   const Json& value, const std::function<void(const Json&)>& persist,
                   std::optional<std::chrono::seconds> ttl = std::nullopt);

/// Warming: loads `keys` in batches of `batch` with `loader` (one value per key, in order),
/// at most `concurrency` batches at once, and stores each batch with pipelined writes.
/// Returns how many keys were stored; a failing batch is counted in the cache's stats and
/// the others go on.
std::size_t warm(Client& client, const CachePatterns& patterns, const std::vector<TierKey>& keys,
                 const std::function<std::vector<Json>(const std::vector<TierKey>&)>& loader,
                 std::size_t batch = 100, std::size_t concurrency = 4,
                 std::optional<std::chrono::seconds> ttl = std::nullopt);

/// Refresh-ahead: once an entry's remaining TTL falls below `refresh_ratio` of its TTL, the
/// caller gets the current value at once and one refresh runs on this object's pool (one
/// across every process: the lease). A full pool skips the refresh (the next read tries
/// again); a failing refresh keeps the old value and is counted.
class RefreshAhead {
 public:
  RefreshAhead(Client& client, const CachePatterns& patterns, std::size_t threads = 2,
               std::size_t queue = 64);
  ~RefreshAhead();  ///< finishes the refreshes queued, then joins
  RefreshAhead(const RefreshAhead&) = delete;
  RefreshAhead& operator=(const RefreshAhead&) = delete;

  Json get(const TierKey& key, Loader loader, double refresh_ratio = 0.2,
           const AsideOptions& options = {});
  /// Refreshes still queued or running.
  std::size_t pending() const;

 private:
  void run();
  Client& client_;
  const CachePatterns& patterns_;
  std::size_t queue_cap_;
  mutable std::mutex m_;
  std::condition_variable cv_;
  std::condition_variable idle_;
  std::deque<std::function<void()>> jobs_;
  std::size_t running_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

/// Write-behind beside the others, in the same shape: the cache value is set and the row
/// queued for PostgreSQL in one script (core/lua/write_behind.lua; docs/write-behind.md);
/// tierd's write_behind handler persists it. Returns the stream entry id. The value is a
/// plain string at the key (read it with Cache::get), as the write-behind contract says.
std::string write_behind(Client& client, const WriteBehind& wb, const CachePatterns& patterns,
                         const TierKey& key, const Json& value, std::string_view table,
                         const Json& row, std::optional<long long> version = std::nullopt,
                         std::optional<std::chrono::seconds> ttl = std::nullopt);

}  // namespace tier
