#pragma once
// The three cache tiers (DESIGN §4): session, project and global keys with their
// default TTLs, JSON values, batches, and libtier's own hit/miss counters.

#include <atomic>
#include <chrono>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "tier/op.hpp"

namespace tier {

using Json = nlohmann::json;

enum class Tier { session = 0, project = 1, global = 2 };
const char* to_string(Tier t) noexcept;
/// Parses "session" / "project" / "global".
std::optional<Tier> parse_tier(std::string_view s) noexcept;

struct CacheOptions {
  /// Namespace prefix put before every key, e.g. "myapp:". Empty = none.
  std::string prefix;
  /// Default TTLs of the tiers.
  std::chrono::seconds session_ttl{300};
  std::chrono::seconds project_ttl{3600};
  std::chrono::seconds global_ttl{86400};
  /// Each TTL is lengthened by a random fraction up to this (0.1 = up to +10%), so keys
  /// written together do not expire together. 0 = exact TTLs.
  double ttl_jitter = 0.0;
  /// Largest serialized value accepted, in bytes. 0 = no limit.
  std::size_t max_value_bytes = 1 << 20;
};

/// A checked key. Builders never throw: a bad id yields a key whose ops fail with
/// `invalid`, naming the argument.
struct TierKey {
  Tier tier = Tier::global;
  std::string key;  ///< the full Redis key, prefix included
  std::optional<Error> invalid;
};

/// What the cache patterns count besides hits and misses (tier/patterns.hpp).
enum class CacheEvent { load, refresh, load_failure };

/// Hits and misses counted by get/mget and the cache patterns, per tier; loads, refreshes
/// and load failures counted by the patterns.
struct CacheStats {
  std::uint64_t hits[3] = {0, 0, 0};
  std::uint64_t misses[3] = {0, 0, 0};
  std::uint64_t loads[3] = {0, 0, 0};
  std::uint64_t refreshes[3] = {0, 0, 0};
  std::uint64_t load_failures[3] = {0, 0, 0};
  double hit_ratio(Tier t) const {
    auto i = static_cast<int>(t);
    auto n = hits[i] + misses[i];
    return n == 0 ? 0.0 : static_cast<double>(hits[i]) / static_cast<double>(n);
  }
};

struct BatchItem {
  TierKey key;
  Json value;
  std::optional<std::chrono::seconds> ttl;  ///< nullopt = the tier's default
};

class Cache {
 public:
  explicit Cache(CacheOptions options = {});

  TierKey session(std::string_view session_id, std::string_view key) const;
  TierKey project(std::string_view project_id, std::string_view key) const;
  TierKey global(std::string_view type, std::string_view identifier, std::string_view metric) const;

  /// SET with the tier's TTL (or `ttl`). A TTL of 0s or less is refused.
  Op<Unit> set(const TierKey& k, const Json& value,
               std::optional<std::chrono::seconds> ttl = std::nullopt) const;
  /// The stored JSON, or nullopt. A value that is not JSON fails with `decode`; a key of
  /// another type with `reply` (WRONGTYPE), both naming the key.
  Op<std::optional<Json>> get(const TierKey& k) const;
  /// Stores JSON text as it is, after checking it is one JSON value (RFC 8259) within
  /// max_value_bytes: for values that arrive already serialized, with no DOM built.
  Op<Unit> set_text(const TierKey& k, std::string json_text,
                    std::optional<std::chrono::seconds> ttl = std::nullopt) const;
  /// The stored JSON text, checked but not parsed (for callers that pass JSON through,
  /// e.g. into an HTTP response). Counts hits and misses like get().
  Op<std::optional<std::string>> get_text(const TierKey& k) const;
  /// True when the key existed (UNLINK).
  Op<bool> del(const TierKey& k) const;
  Op<bool> exists(const TierKey& k) const;
  /// Remaining TTL; nullopt when the key does not exist, -1s when it has no expiry.
  Op<std::optional<std::chrono::seconds>> ttl(const TierKey& k) const;

  /// SET EX for every item in one round trip.
  Op<Unit> mset(const std::vector<BatchItem>& items) const;
  /// One MGET; one result per key, in order.
  Op<std::vector<std::optional<Json>>> mget(const std::vector<TierKey>& keys) const;

  /// SCAN patterns matching every key of a session / project (ids glob-escaped).
  std::string session_pattern(std::string_view session_id) const;
  std::string project_pattern(std::string_view project_id) const;
  /// `pattern` with the namespace prefix in front.
  std::string prefixed(std::string_view key) const { return options_.prefix + std::string(key); }

  std::chrono::seconds default_ttl(Tier t) const;
  /// The TTL to write: `ttl` or the default, with jitter.
  std::chrono::seconds effective_ttl(Tier t, std::optional<std::chrono::seconds> ttl) const;
  /// Serializes a value, refusing invalid UTF-8 and values over max_value_bytes.
  Result<std::string> encode(const Json& value, std::string_view key) const;

  CacheStats stats() const;
  void reset_stats();
  /// Counts a hit or miss (used by ops of other modules that read tier keys).
  void count(Tier t, bool hit) const;
  void count_event(Tier t, CacheEvent e) const;
  const CacheOptions& options() const noexcept { return options_; }

 private:
  /// prefix + parts joined with ':'.
  Op<Unit> set_encoded(const TierKey& k, std::string text,
                       std::optional<std::chrono::seconds> ttl) const;
  template <class T, class Decode>
  Op<std::optional<T>> get_as(const TierKey& k, Decode decode) const;
  Error too_large(std::string_view key, std::size_t bytes) const;
  TierKey make(Tier t, std::initializer_list<std::string_view> parts,
               std::optional<Error> invalid) const;

  struct Counters {
    std::atomic<std::uint64_t> hits[3];
    std::atomic<std::uint64_t> misses[3];
    std::atomic<std::uint64_t> loads[3];
    std::atomic<std::uint64_t> refreshes[3];
    std::atomic<std::uint64_t> load_failures[3];
  };
  CacheOptions options_;
  // Shared with the decoders of ops, which may outlive this object.
  std::shared_ptr<Counters> counters_;
};

/// Decodes a stored value as JSON; `decode` error naming the key otherwise.
Result<Json> decode_json(const std::string& text, std::string_view key);

}  // namespace tier
