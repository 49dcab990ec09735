#pragma once
// The write-behind engine (DESIGN §3): reads writebehind:{table} with the consumer group
// `tierd`, coalesces a batch by key (newest version wins; equal versions: stream order),
// writes it to PostgreSQL in one transaction (COPY into a staging table + INSERT ... ON
// CONFLICT ... WHERE the stored version and any tombstone are older; version-guarded DELETE
// that records a tombstone in tierd_tombstones in the same transaction), and only after
// COMMIT acknowledges and deletes the entries. Transient errors retry the batch with backoff
// while reading stops; rows PostgreSQL rejects for good are isolated by bisection and moved
// with the error to writebehind:{table}:dead. Runs on the host's loop; never blocks.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "handlers/handler.hpp"
#include "tier/pg/conn.hpp"
#include "tier/result.hpp"

namespace tierd::wb {

struct WriteBehindTable {
  /// The name in the stream key writebehind:{name}.
  std::string name;
  /// The PostgreSQL table, [schema.]table. Empty = `name`.
  std::string pg_table;
  /// Columns of the conflict target (a primary key or unique index of the table).
  std::vector<std::string> key_columns;
  /// Columns a stream entry may write (key and version columns are always allowed).
  std::vector<std::string> columns;
  /// Column holding the row version; empty = no version guard (last write wins).
  std::string version_column;
  /// A batch is written when it has this many entries ...
  std::size_t max_rows = 1000;
  /// ... or when its first entry has waited this long.
  std::chrono::milliseconds max_delay{200};
  /// Retry backoff of a batch that failed for a transient reason: first delay and cap.
  std::chrono::milliseconds retry_min{100};
  std::chrono::milliseconds retry_max{10000};
  /// An entry delivered more often than this goes to the dead letters. 0 = no limit.
  int max_deliveries = 10;
  /// Pending entries idle this long in another consumer are claimed (XAUTOCLAIM).
  std::chrono::milliseconds claim_idle{30000};
};

struct WriteBehindWorkerOptions {
  std::vector<WriteBehindTable> tables;
  /// Namespace prefix before every key (DESIGN §4). Empty = none.
  std::string prefix;
  std::string group = "tierd";
  /// Consumer name in the group; empty = host:pid.
  std::string consumer;
  /// Where an alert for each dead letter is published ("" = none).
  std::string alert_channel = "notifications:alerts";
  /// BLOCK of a read for new entries.
  std::chrono::milliseconds block{1000};
  /// Deadline of one batch transaction in PostgreSQL.
  std::chrono::milliseconds batch_timeout{30000};
  /// How often pending count and oldest pending age are refreshed. 0 = never.
  std::chrono::milliseconds status_interval{1000};
  /// Tombstones (table tierd_tombstones: the version of each delete of a versioned table)
  /// older than this are pruned; an upsert older than a pruned delete can re-create the row.
  std::chrono::seconds tombstone_retention{7 * 24 * 3600};
  /// At most this often a batch transaction of a table prunes its expired tombstones
  /// (at most tombstone_prune_limit rows each time).
  std::chrono::milliseconds tombstone_prune_interval{300000};
  std::size_t tombstone_prune_limit = 10000;
};

/// Counters of one table (also exported to the metrics registry when one is given).
struct WriteBehindStats {
  std::uint64_t rows_flushed = 0;     ///< rows written (after coalescing)
  std::uint64_t entries_acked = 0;    ///< stream entries acknowledged after COMMIT
  std::uint64_t batches_flushed = 0;  ///< committed transactions
  std::uint64_t coalesced = 0;        ///< entries folded into a newer entry of the same key
  std::uint64_t retries = 0;          ///< transactions retried after a transient error
  std::uint64_t dead_letters = 0;     ///< entries moved to the dead-letter stream
  std::uint64_t bisections = 0;       ///< batches split to isolate rejected rows
  double last_batch_ms = 0;           ///< latency of the last committed transaction
  long long pending = 0;              ///< entries delivered and not acknowledged (refreshed)
  long long oldest_pending_age_ms = -1;
  bool running = false;   ///< started, and not stopped
  bool retrying = false;  ///< a batch waits for a retry (PostgreSQL or Redis down)
};

/// host:pid, the default consumer name.
std::string default_consumer_name();

class WriteBehindWorker {
 public:
  /// Everything comes from the host through `ctx`: its Redis link runs the short commands
  /// (ACK, claims, dead letters), each table reads on a connection of its own
  /// (ctx.redis_connection), batches go through ctx.postgres(); timers, metrics and the
  /// logger are the host's too, so every link and timer shows in readiness and metrics.
  /// `ctx` must outlive the worker. Throws InvalidArgument for a table config that is wrong
  /// on its face, or without PostgreSQL.
  WriteBehindWorker(Context& ctx, WriteBehindWorkerOptions options);
  ~WriteBehindWorker();
  WriteBehindWorker(const WriteBehindWorker&) = delete;
  WriteBehindWorker& operator=(const WriteBehindWorker&) = delete;

  /// Creates the groups (MKSTREAM), checks every configured column against the live table
  /// and starts reading. `ready` gets Ok once every table runs, or the first permanent
  /// start-up error (an unknown table or column, named). Redis or PostgreSQL being down
  /// is not an error: start-up waits and retries.
  void start(std::function<void(tier::Status)> ready);
  /// Writes what is buffered now instead of waiting for max_delay. Empty = every table.
  void flush(std::string_view table = {});
  /// Stops reading, writes the buffered batch, acknowledges it, then calls `done`; after
  /// `deadline` `done` is called anyway (what was not written stays pending in Redis).
  void stop(std::chrono::milliseconds deadline, std::function<void()> done);

  WriteBehindStats stats(std::string_view table) const;
  const std::string& consumer() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace tierd::wb
