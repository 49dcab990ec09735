#pragma once
// Cache patterns on the tier keys (docs/patterns.md): cache-aside with single-flight loading
// across processes, XFetch early refresh, refresh-ahead and write-through. The steps are ops
// of one script (core/lua/cache_aside.lua) on one key; the drivers that call a loader and
// wait are per transport (tier/sync/patterns.hpp, tier/uv/patterns.hpp).
//
// An entry is a hash at the tier key: `v` the value (JSON text), `d` the last load's duration
// in ms, `l`/`lx` the lease of the caller loading it now. Its expiry is the key's TTL. Another
// language reads the value with HGET <key> v.

#include <chrono>
#include <optional>
#include <string>

#include "tier/cache.hpp"
#include "tier/op.hpp"

namespace tier {

struct Lookup {
  enum class Kind {
    hit,      ///< a value; nothing to do
    refresh,  ///< a value, and this caller holds the lease to recompute it early
    load,     ///< no value; this caller holds the lease to load it
    wait,     ///< no value; another caller is loading it
  };
  Kind kind = Kind::hit;
  std::string value;                        ///< JSON text (hit, refresh)
  std::chrono::milliseconds lease_left{0};  ///< wait: the other loader's lease
};

struct LookupOptions {
  /// How long one loader may hold the lease before another caller takes over.
  std::chrono::milliseconds lease{10000};
  /// XFetch's beta: > 1 favours early recomputation, 0 turns it off.
  double beta = 1.0;
  /// XFetch's draw in (0, 1]; nullopt = a fresh uniform draw.
  std::optional<double> rand;
  /// Refresh-ahead: refresh once the remaining TTL is below this share of `full_ttl` (0 = off).
  double refresh_ratio = 0.0;
  std::chrono::milliseconds full_ttl{0};
};

struct AsideOptions {
  /// The entry's TTL; nullopt = the tier's default (with the cache's jitter).
  std::optional<std::chrono::seconds> ttl;
  /// How long a caller waits for another caller's load before it gives up waiting.
  std::chrono::milliseconds wait{5000};
  /// After waiting in vain: load itself (true) or fail with `timeout` (false).
  bool load_on_timeout = true;
  /// How long one loader may hold the lease.
  std::chrono::milliseconds lease{10000};
  /// XFetch's beta (0 = no early refresh).
  double beta = 1.0;
};

class CachePatterns {
 public:
  explicit CachePatterns(const Cache& cache) : cache_(cache) {}

  /// One atomic look at the entry; takes the lease when this caller is to (re)load it.
  Op<Lookup> lookup(const TierKey& key, const std::string& token,
                    const LookupOptions& options = {}) const;
  /// Stores a loaded value (JSON text, checked) with `ttl` and the load's duration; ends the
  /// lease when it is `token`'s.
  Op<Unit> store(const TierKey& key, const std::string& token, std::string value_json,
                 std::chrono::milliseconds ttl, std::chrono::milliseconds delta) const;
  /// Ends `token`'s lease at once (its loader failed); an entry without a value goes.
  Op<bool> release(const TierKey& key, const std::string& token) const;

  /// The entry's TTL to write: the tier's default (or `ttl`) with the cache's jitter.
  std::chrono::milliseconds ttl_of(const TierKey& key,
                                   std::optional<std::chrono::seconds> ttl) const;
  const Cache& cache() const { return cache_; }

  /// A random lease token (128 bits, hex).
  static std::string new_token();

 private:
  const Cache& cache_;
};

}  // namespace tier
