#pragma once
// Write-behind, library side (DESIGN §3, §5): apps append rows to the stream
// writebehind:{table}; tierd's write_behind handler (handlers/write_behind/) persists them to
// PostgreSQL. Record: XADD writebehind:{table} * op upsert|delete row <json object> [version
// <int>].

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tier/cache.hpp"
#include "tier/op.hpp"

namespace tier {

struct WriteBehindOptions {
  /// Namespace prefix put before every key, e.g. "myapp:". Empty = none.
  std::string prefix;
  /// Largest serialized row accepted, in bytes. 0 = no limit.
  std::size_t max_row_bytes = 1 << 20;
};

enum class WriteOp { upsert, del };

struct WriteBehindStatus {
  long long length = 0;                  ///< entries in the stream
  long long pending = 0;                 ///< delivered to a consumer, not acknowledged
  long long oldest_pending_age_ms = -1;  ///< -1 = nothing pending
  long long dead_letters = 0;
  long long lag = -1;  ///< entries not yet delivered to the group; -1 = unknown / no group
};

struct DeadLetter {
  std::string id;           ///< id in the dead-letter stream
  std::string original_id;  ///< id the entry had in the stream
  std::string error;
  std::vector<std::pair<std::string, std::string>> fields;  ///< the original fields
};
const char* to_string(WriteOp op) noexcept;

class WriteBehind {
 public:
  explicit WriteBehind(WriteBehindOptions options = {});

  /// The stream of a table: <prefix>writebehind:<table>.
  std::string stream(std::string_view table) const;
  /// The dead-letter stream of a table: <prefix>writebehind:<table>:dead.
  std::string dead_stream(std::string_view table) const;

  /// XADD an upsert; returns the entry id. `row` must be a JSON object (with at least the
  /// table's key columns); `table` a plain identifier ([A-Za-z_][A-Za-z0-9_.]*).
  Op<std::string> enqueue(std::string_view table, const Json& row,
                          std::optional<long long> version = std::nullopt) const;
  /// XADD a delete of the row with these key columns (version-guarded when given).
  Op<std::string> enqueue_delete(std::string_view table, const Json& key_row,
                                 std::optional<long long> version = std::nullopt) const;
  /// One Lua script (core/lua/write_behind.lua): SET the cache value with its TTL and XADD
  /// the upsert, atomically. `ttl` nullopt = the tier's default. Returns the entry id.
  Op<std::string> write_behind(const Cache& cache, const TierKey& cache_key, const Json& value,
                               std::optional<std::chrono::seconds> ttl, std::string_view table,
                               const Json& row, std::optional<long long> version) const;

  /// Stream length, pending entries, age of the oldest pending one (Redis clock), dead
  /// letters and consumer-group lag (core/lua/write_behind_status.lua).
  Op<WriteBehindStatus> status(std::string_view table, std::string_view group = "tierd") const;
  /// The oldest `count` dead letters of a table (with their errors).
  Op<std::vector<DeadLetter>> dead_letters(std::string_view table, std::size_t count = 100) const;
  /// Moves these dead letters back to the stream (core/lua/write_behind_replay.lua);
  /// returns how many were moved (ids not found are skipped).
  Op<long long> replay(std::string_view table, const std::vector<std::string>& ids) const;

  const WriteBehindOptions& options() const noexcept { return options_; }

 private:
  Op<std::string> add(WriteOp op, std::string_view table, const Json& row,
                      std::optional<long long> version) const;
  /// The checked, serialized row; `invalid` error otherwise.
  Result<std::string> encode_row(std::string_view table, const Json& row) const;

  WriteBehindOptions options_;
};

/// nullopt when `table` is a plain identifier usable in a stream name and in SQL
/// ([A-Za-z_][A-Za-z0-9_]* with at most one '.' for a schema, at most 63 bytes a part).
std::optional<Error> check_table_name(std::string_view table);

}  // namespace tier
