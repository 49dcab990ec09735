#pragma once
// What the write-behind worker decides without any I/O: how a batch of stream entries
// coalesces into rows (newest version wins, equal versions: stream order; the columns of
// older upserts fold in), which statements write those rows in one transaction, and
// whether the live table fits the configuration. Tested without a server
// (tests/handlers/write_behind/test_plan.cpp); the worker runs what these return.

#include <chrono>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "handlers/write_behind/row.hpp"
#include "handlers/write_behind/stream.hpp"
#include "tier/pg/conn.hpp"

namespace tierd::wb {

struct WriteBehindTable;

/// The one table holding the tombstones of every versioned table (in the connection's
/// current schema).
inline constexpr const char* kTombstones = "tierd_tombstones";
/// Second key of a versioned table's lock, pg_advisory_xact_lock(hashtext(table), this).
inline constexpr int kTableLockKey = -1;

/// A configured table as the SQL names it.
struct SqlTable {
  std::string name;    ///< the configured name (messages)
  std::string target;  ///< quoted [schema.]table
  std::optional<std::string> schema;
  std::string relname;
  std::vector<std::string> key_columns;
  std::vector<std::string> quoted_keys;
  std::string version_column;  ///< empty = not versioned
};

/// What is wrong with a table's configuration, by the key of its YAML section.
struct TableProblem {
  std::string key;  ///< "name", "pg_table", "key_columns", "columns", "max_rows", ...
  std::string message;
};

/// Checks a table's names and limits: what can be known without a server. The config
/// check reports it under the table's YAML path; the worker refuses to start with it.
std::optional<TableProblem> check_table(const WriteBehindTable& cfg);

/// How the SQL names a table that passed check_table().
SqlTable sql_table(const WriteBehindTable& cfg);

/// One row to write after coalescing: the newest entry of a key, with the columns of
/// older upserts it supersedes folded in (as if they had been applied in order).
struct Change : Row {
  std::size_t winner = 0;            ///< entry index whose op and version won
  std::vector<std::size_t> entries;  ///< every entry index folded into this change
};

struct Coalesced {
  std::vector<Change> changes;
  std::vector<std::pair<std::size_t, std::string>> dead;  ///< entry index, error
  std::vector<std::string> ack;  ///< entries to acknowledge only (deleted while pending)
  std::size_t folded = 0;        ///< entries folded into a newer one of the same key
};

/// Decodes and coalesces one batch a slice of entries at a time, so that the loop can
/// answer PostgreSQL between slices (coalesce() below runs it in one go). An entry
/// delivered more than `max_deliveries` times (per `deliveries`; 0 = no limit) or malformed
/// goes to `dead` with the reason. `entries` must outlive the coalescer and not change.
class Coalescer {
 public:
  Coalescer(const RowLayout& layout, const std::vector<Entry>& entries,
            std::unordered_map<std::string, long long> deliveries, int max_deliveries);
  /// Decodes up to `max` more entries; true once every entry is in.
  bool step(std::size_t max, RowScratch& scratch);
  bool done() const { return next_ == entries_.size(); }
  /// The result (after done()).
  Coalesced take() { return std::move(out_); }

 private:
  const RowLayout& layout_;
  const std::vector<Entry>& entries_;
  std::unordered_map<std::string, long long> deliveries_;
  int max_deliveries_;
  std::size_t next_ = 0;
  // Keys viewed in their change's own `key`: changes never move (reserved for every
  // entry), and a newer entry taking a change over keeps that change's key string.
  std::unordered_map<std::string_view, std::size_t> by_key_;
  Coalesced out_;
};

/// Decodes and coalesces one batch in one go.
Coalesced coalesce(const RowLayout& layout, const std::vector<Entry>& entries,
                   const std::unordered_map<std::string, long long>& deliveries, int max_deliveries,
                   RowScratch& scratch);

/// The statements of one transaction writing `chunk` (indices into `changes`): per
/// (op, column set) a staging table filled by COPY, then one INSERT ... ON CONFLICT or
/// DELETE ... USING; for a versioned table the key locks, the tombstone checks and the
/// tombstone writes.
std::vector<tier::PgStatement> write_statements(const SqlTable& t, const RowLayout& layout,
                                                const std::vector<Change>& changes,
                                                const std::vector<std::size_t>& chunk);

/// Deletes at most `limit` tombstones of the table older than `retention` (bounded, so a
/// backlog of expired tombstones never makes one batch slow).
tier::PgStatement prune_statement(const SqlTable& t, std::chrono::seconds retention,
                                  std::size_t limit);

/// Creates the tombstone table once (serialized by an advisory lock: CREATE TABLE IF NOT
/// EXISTS alone can fail on a concurrent creation).
std::vector<tier::PgStatement> tombstone_ddl();

/// The live columns of the table (name -> data_type), from information_schema.
tier::PgStatement columns_query(const SqlTable& t);
/// EXPLAIN of an upsert on the key columns: fails when they are no conflict target.
tier::PgStatement conflict_probe(const SqlTable& t);

/// Checks the configured columns against the live ones (name -> data_type) and marks
/// json/jsonb columns in `layout`. Returns the error naming the table and the YAML key.
std::optional<std::string> check_schema(const WriteBehindTable& cfg, const SqlTable& t,
                                        const std::map<std::string, std::string>& live,
                                        RowLayout& layout);

/// PostgreSQL refused the rows themselves (bisect and dead-letter them), rather than
/// failing for a reason a retry may fix.
bool rejects_data(const tier::Error& e);

}  // namespace tierd::wb
