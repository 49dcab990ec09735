#include "handlers/write_behind/worker.hpp"

#include <spdlog/logger.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <deque>
#include <map>
#include <random>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "handlers/write_behind/plan.hpp"
#include "handlers/write_behind/row.hpp"
#include "handlers/write_behind/stream.hpp"
#include "tier/backoff.hpp"
#include "tier/errors.hpp"
#include "tier/json_check.hpp"
#include "tier/keys.hpp"
#include "tier/metrics.hpp"
#include "tier/op.hpp"
#include "tier/script.hpp"
#include "tier/uv/async_client.hpp"
#include "tier/writebehind.hpp"

namespace tierd::wb {

using namespace tier;

std::string default_consumer_name() {
  return host_pid();
}

namespace {

using Clock = std::chrono::steady_clock;
using ms = std::chrono::milliseconds;
using Json = nlohmann::json;

/// The worker's metrics, declared once (per table series below them).
struct Families {
  explicit Families(metrics::Registry& r)
      : rows(r.counter("tierd_writebehind_rows_total",
                       "Rows written to PostgreSQL (after coalescing)")),
        batches(r.counter("tierd_writebehind_batches_total", "Committed batch transactions")),
        coalesced(r.counter("tierd_writebehind_coalesced_total",
                            "Entries folded into a newer entry of the same key")),
        retries(r.counter("tierd_writebehind_retries_total",
                          "Batch transactions retried after a transient error")),
        dead(r.counter("tierd_writebehind_dead_letters_total",
                       "Entries moved to the dead-letter stream")),
        latency(r.histogram("tierd_writebehind_batch_seconds",
                            "Latency of a committed batch transaction")),
        pending(r.gauge("tierd_writebehind_pending", "Entries delivered and not acknowledged")),
        oldest(r.gauge("tierd_writebehind_oldest_pending_seconds",
                       "Age of the oldest pending entry (Redis clock)")),
        up(r.gauge("tierd_writebehind_table_up", "1 when the table passed its start-up checks")) {}
  metrics::Family<metrics::Counter>& rows;
  metrics::Family<metrics::Counter>& batches;
  metrics::Family<metrics::Counter>& coalesced;
  metrics::Family<metrics::Counter>& retries;
  metrics::Family<metrics::Counter>& dead;
  metrics::Family<metrics::Histogram>& latency;
  metrics::Family<metrics::Gauge>& pending;
  metrics::Family<metrics::Gauge>& oldest;
  metrics::Family<metrics::Gauge>& up;
};

struct Batch {
  std::vector<Entry> entries;
  std::vector<Change> changes;
  std::vector<std::pair<std::size_t, std::string>> dead;  // entry index, error
  std::deque<std::vector<std::size_t>> chunks;            // change indices still to write
  std::vector<std::string> ack;                           // ids to acknowledge at the end
  std::size_t dead_inflight = 0;
  Clock::time_point started;
  bool ready = false;     // parsed and coalesced
  bool had_dead = false;  // some entries went to the dead letters
  // The statements of the first transaction, built ahead while the previous batch is in
  // PostgreSQL (the loop would otherwise wait idle).
  std::optional<std::vector<PgStatement>> prebuilt;
  // Set while the batch is decoded a slice at a time (see prepare_slice).
  std::unique_ptr<Coalescer> coalescer;
};

// Entries per XREADGROUP, and entries decoded per loop turn while another batch is in
// PostgreSQL: the loop stays free to answer PostgreSQL (a COPY waits for its data) within
// about a millisecond instead of after a whole batch's decoding.
constexpr std::size_t kReadChunk = 1000;
constexpr std::size_t kPrepareSlice = 500;

PgConn& postgres_of(Context& ctx) {
  if (ctx.postgres() == nullptr) {
    throw InvalidArgument("write-behind needs a PostgreSQL connection (postgres.conninfo)");
  }
  return *ctx.postgres();
}

}  // namespace

struct WriteBehindWorker::Impl : std::enable_shared_from_this<WriteBehindWorker::Impl> {
  enum class Mode { pending, claim, live };

  struct Table;

  struct Table {
    WriteBehindTable cfg;
    std::string stream;
    std::string dead_stream;
    SqlTable sql;   // how the SQL names the table
    RowLayout row;  // columns by index: a row's column set is a bit mask
    // The tombstone key of a row: ARRAY[<alias>.k1::text, ...] (see tombstone_key).
    Clock::time_point next_prune{};
    AsyncClient* reader = nullptr;  // the host's connection, for this table's blocking reads
    std::vector<Entry> buffer;
    Clock::time_point buffer_since;
    TimerHandle delay_timer;
    TimerHandle retry_timer;
    TimerHandle prepare_timer;
    bool started = false;
    bool starting = false;
    bool failed = false;
    bool reading = false;
    bool flush_requested = false;
    bool recheck_pending = false;
    Mode mode = Mode::pending;
    std::string pending_cursor = "0";
    std::string claim_cursor = "0-0";
    Clock::time_point next_claim;
    std::unique_ptr<Batch> inflight;
    std::unique_ptr<Batch> next;  // taken from the buffer and prepared while inflight runs
    // Ids committed (or dead) whose ACK is on its way, one list per ACK in flight.
    std::vector<std::shared_ptr<const std::vector<std::string>>> unacked;
    std::vector<std::string> ack_backlog;  // ACKs that failed: sent again with the next
    std::size_t acks_inflight = 0;
    int retry_attempt = 0;
    int start_attempt = 0;
    bool logged_retry = false;
    WriteBehindStats stats;
    // Metric series of this table.
    metrics::Counter* m_rows = nullptr;
    metrics::Counter* m_batches = nullptr;
    metrics::Counter* m_coalesced = nullptr;
    metrics::Counter* m_retries = nullptr;
    metrics::Counter* m_dead = nullptr;
    metrics::Histogram* m_latency = nullptr;
    metrics::Gauge* m_pending = nullptr;
    metrics::Gauge* m_oldest = nullptr;
    metrics::Gauge* m_up = nullptr;
  };

  Context& ctx;
  AsyncClient& commands;
  PgConn& pg;
  WriteBehindWorkerOptions opts;
  Families families;
  std::vector<std::unique_ptr<Table>> tables;
  std::function<void(Status)> ready_cb;
  std::size_t tables_ready = 0;
  bool closed = false;
  bool stopping = false;
  std::function<void()> stop_cb;
  TimerHandle stop_timer;
  TimerHandle status_timer;
  RowScratch scratch;  // reused by every decode_row()

  Impl(Context& c, PgConn& p, WriteBehindWorkerOptions o)
      : ctx(c), commands(c.redis()), pg(p), opts(std::move(o)), families(c.metrics()) {
    if (opts.consumer.empty()) {
      opts.consumer = default_consumer_name();
    }
    if (opts.tables.empty()) {
      throw InvalidArgument("write-behind: no table configured");
    }
    if (opts.tombstone_retention.count() < 0 || opts.tombstone_prune_interval.count() < 0 ||
        opts.tombstone_prune_limit == 0) {
      throw InvalidArgument(
          "write-behind: tombstone_retention >= 0, tombstone_prune_interval >= 0 and "
          "tombstone_prune_limit > 0 are required");
    }
    std::set<std::string> names;
    for (auto& cfg : opts.tables) {
      auto t = std::make_unique<Table>();
      t->cfg = cfg;
      std::string where = "write-behind table '" + excerpt(cfg.name) + "'";
      if (auto bad = check_table(cfg)) {
        throw InvalidArgument(where + ": " + bad->key + ": " + bad->message);
      }
      if (!names.insert(cfg.name).second) {
        throw InvalidArgument(where + ": configured twice");
      }
      t->sql = sql_table(cfg);
      t->row = row_layout(cfg);
      WriteBehind wb({.prefix = opts.prefix});
      t->stream = wb.stream(cfg.name);
      t->dead_stream = wb.dead_stream(cfg.name);
      const metrics::Labels l{{"table", cfg.name}};
      t->m_rows = &families.rows.with(l);
      t->m_batches = &families.batches.with(l);
      t->m_coalesced = &families.coalesced.with(l);
      t->m_retries = &families.retries.with(l);
      t->m_dead = &families.dead.with(l);
      t->m_latency = &families.latency.with(l);
      t->m_pending = &families.pending.with(l);
      t->m_oldest = &families.oldest.with(l);
      t->m_up = &families.up.with(l);
      tables.push_back(std::move(t));
    }
  }

  // ---- timers -----------------------------------------------------------------------

  // Runs fn on the table after `delay`, unless the worker is gone. One pending action per
  // timer: a later call replaces (and so cancels) an earlier one. Timers are the host's.
  void after(Table* t, TimerHandle& tm, ms delay, void (*fn)(Impl*, Table*)) {
    tm = ctx.start_timer(std::max(delay, ms(0)), ms(0), [self = weak_from_this(), t, fn] {
      auto s = self.lock();
      if (s && !s->closed) {
        fn(s.get(), t);
      }
    });
  }

  ms backoff(Table* t, int attempt) {
    return backoff_delay(t->cfg.retry_min, t->cfg.retry_max, attempt);
  }

  // ---- start ------------------------------------------------------------------------

  void start(std::function<void(Status)> ready) {
    ready_cb = std::move(ready);
    for (auto& t : tables) {
      table_up(t.get(), false);  // nothing is stored before the live table is checked
      // A connection of its own: a blocking read must not hold up the short commands.
      t->reader = &ctx.redis_connection("writebehind-reader:" + t->cfg.name, opts.block + ms(5000));
      start_table(t.get());
    }
    if (opts.status_interval.count() > 0) {
      status_timer = ctx.start_timer(ms(0), opts.status_interval, [self = weak_from_this()] {
        auto s = self.lock();
        if (s && !s->closed) {
          s->refresh_status();
        }
      });
    }
  }

  // Readiness (/readyz, tierd_writebehind_table_up) follows each table's start-up checks.
  void table_up(Table* t, bool up) {
    t->m_up->set(up ? 1 : 0);
    ctx.report_ready("write_behind_tables", t->cfg.name, up);
  }

  void report_ready(Table* t, std::optional<Error> error) {
    table_up(t, !error);
    if (error) {
      t->failed = true;
      ctx.log().error("{}", error->message);
      if (ready_cb) {
        auto cb = std::move(ready_cb);
        ready_cb = nullptr;
        cb(*error);
      }
      return;
    }
    if (++tables_ready == tables.size() && ready_cb) {
      auto cb = std::move(ready_cb);
      ready_cb = nullptr;
      cb(Unit{});
    }
  }

  void start_table(Table* t) {
    if (closed || t->failed || t->starting) {
      return;
    }
    t->starting = true;
    auto w = weak_from_this();
    commands.run(create_group(t->stream, opts.group), [w, t](Result<Unit> r) {
      auto self = w.lock();
      if (!self || self->closed) {
        return;
      }
      if (!r.ok()) {
        self->retry_start(t, "cannot create the group yet: " + r.error().message);
        return;
      }
      self->check_columns(t);
    });
  }

  // A start-up step failed for a reason a retry may fix: start the table again later.
  void retry_start(Table* t, const std::string& why) {
    t->starting = false;
    if (!why.empty()) {
      ctx.log().warn("write-behind {}: {}", t->cfg.name, why);
    }
    after(t, t->retry_timer, backoff(t, t->start_attempt++),
          [](Impl* s, Table* tb) { s->start_table(tb); });
  }

  void check_columns(Table* t) {
    auto w = weak_from_this();
    auto q = columns_query(t->sql);
    pg.query(std::move(q.sql), std::move(q.params), [w, t](Result<PgResult> r) {
      auto self = w.lock();
      if (!self || self->closed) {
        return;
      }
      if (!r.ok()) {
        self->retry_start(t, "cannot check the table yet: " + r.error().message);
        return;
      }
      std::map<std::string, std::string> live;
      for (auto& row : r->rows) {
        live[row[0].value_or("")] = row[1].value_or("");
      }
      if (auto bad = check_schema(t->cfg, t->sql, live, t->row)) {
        self->report_ready(t, Error{ErrorKind::invalid, *bad});
        return;
      }
      self->check_conflict_target(t);
    });
  }

  // EXPLAIN plans the upsert without running it: a key that matches no unique index is a
  // start-up error here rather than a failing batch later.
  void check_conflict_target(Table* t) {
    auto w = weak_from_this();
    auto probe = conflict_probe(t->sql);
    pg.query(std::move(probe.sql), {}, [w, t](Result<PgResult> r) {
      auto self = w.lock();
      if (!self || self->closed) {
        return;
      }
      if (!r.ok() && pg_transient(r.error())) {
        self->retry_start(t, {});
        return;
      }
      if (!r.ok()) {
        self->report_ready(t,
                           Error{ErrorKind::invalid, "write-behind table '" + t->cfg.name +
                                                         "': key_columns are not a primary key or "
                                                         "unique index of " +
                                                         t->sql.target + ": " + r.error().message});
        return;
      }
      if (!t->cfg.version_column.empty()) {
        self->ensure_tombstones(t);
        return;
      }
      self->begin_reading(t);
    });
  }

  // A versioned table needs the tombstone table. The advisory lock serializes workers that
  // start together: CREATE TABLE IF NOT EXISTS alone can fail on a concurrent creation.
  void ensure_tombstones(Table* t) {
    auto w = weak_from_this();
    pg.transaction(tombstone_ddl(), [w, t](Result<std::vector<PgResult>> r) {
      auto self = w.lock();
      if (!self || self->closed) {
        return;
      }
      if (!r.ok() && pg_transient(r.error())) {
        self->retry_start(t, {});
        return;
      }
      if (!r.ok()) {
        self->report_ready(
            t, Error{ErrorKind::invalid, "write-behind table '" + t->cfg.name +
                                             "': cannot create the tombstone table " +
                                             std::string(kTombstones) + ": " + r.error().message});
        return;
      }
      self->begin_reading(t);
    });
  }

  void begin_reading(Table* t) {
    t->starting = false;
    bool first = !t->started;
    t->started = true;
    t->start_attempt = 0;
    t->mode = Mode::pending;
    t->pending_cursor = "0";
    t->stats.running = true;
    if (first) {
      ctx.log().info("write-behind {}: consuming {} as {} into {}", t->cfg.name, t->stream,
                     opts.consumer, t->sql.target);
      report_ready(t, std::nullopt);
    }
    pump_read(t);
  }

  // ---- reading ----------------------------------------------------------------------

  bool idle(Table* t) const { return !t->inflight && t->buffer.empty() && !t->reading; }

  void pump_read(Table* t) {
    if (closed || stopping || !t->started || t->starting || t->reading) {
      return;
    }
    // Backpressure: while a batch waits for a retry, or the next batch is already full,
    // the backlog stays in Redis.
    if (t->buffer.size() >= t->cfg.max_rows || (t->inflight && t->stats.retrying)) {
      return;
    }
    if (t->recheck_pending) {
      if (!t->inflight && !t->next && t->buffer.empty()) {
        t->recheck_pending = false;
        t->mode = Mode::pending;
        t->pending_cursor = "0";
      }
    }
    if (t->mode == Mode::live && Clock::now() >= t->next_claim) {
      t->mode = Mode::claim;
      t->claim_cursor = "0-0";
    }
    std::size_t want = std::min(t->cfg.max_rows - t->buffer.size(), kReadChunk);
    auto w = weak_from_this();
    t->reading = true;
    switch (t->mode) {
      case Mode::pending:
        // Own pending entries (delivered before a reconnect or restart and not acknowledged).
        commands.run(read_group(t->stream, opts.group, opts.consumer, want, t->pending_cursor),
                     [w, t](Result<std::vector<Entry>> r) {
                       if (auto self = w.lock(); self && !self->closed) {
                         self->on_read(t, std::move(r), std::nullopt);
                       }
                     });
        break;
      case Mode::claim:
        commands.run(auto_claim(t->stream, opts.group, opts.consumer, t->cfg.claim_idle,
                                t->claim_cursor, want),
                     [w, t](Result<Claimed> r) {
                       if (auto self = w.lock(); self && !self->closed) {
                         if (!r.ok()) {
                           self->on_read(t, r.error(), std::nullopt);
                         } else {
                           auto cursor = std::move(r->next_cursor);
                           self->on_read(t, std::move(r->entries), std::move(cursor));
                         }
                       }
                     });
        break;
      case Mode::live:
        // A blocking read on the table's own connection: it never holds up the commands.
        t->reader->run(read_group(t->stream, opts.group, opts.consumer, want, ">", opts.block),
                       [w, t](Result<std::vector<Entry>> r) {
                         if (auto self = w.lock(); self && !self->closed) {
                           self->on_read(t, std::move(r), std::nullopt);
                         }
                       });
        break;
    }
  }

  // What a read brought; `claim_cursor` is set for a claim.
  void on_read(Table* t, Result<std::vector<Entry>> r, std::optional<std::string> claim_cursor) {
    t->reading = false;
    // A read of new entries (">") cannot return one delivered before: only reads of pending
    // entries and claims need the filter below.
    const bool fresh = !claim_cursor && t->mode == Mode::live;
    if (!r.ok()) {
      const Error& e = r.error();
      if (e.code == "NOGROUP") {
        // The stream or group went away (Redis restarted without persistence, or the key
        // was deleted): create it again.
        ctx.log().warn("write-behind {}: {}; creating the group again", t->cfg.name, e.message);
        t->started = false;
        t->stats.running = false;
        start_table(t);
        return;
      }
      // The reply may have been lost after Redis delivered entries: read own pending
      // entries again once idle.
      t->recheck_pending = true;
      after(t, t->retry_timer, backoff(t, 0), [](Impl* s, Table* tb) { s->pump_read(tb); });
      return;
    }
    std::vector<Entry> got = std::move(r).value();
    if (claim_cursor) {
      t->claim_cursor = *claim_cursor;
      if (*claim_cursor == "0-0") {
        t->mode = Mode::live;
        t->next_claim = Clock::now() + std::max(ms(1000), ms(t->cfg.claim_idle.count() / 2));
      }
    } else if (t->mode == Mode::pending) {
      if (got.empty()) {
        t->mode = Mode::claim;
        t->claim_cursor = "0-0";
      } else {
        t->pending_cursor = got.back().id;
      }
    }
    // Entries whose ACK is on its way (or failed, and waits in the backlog) are already
    // written: never write them again.
    if (!fresh && !got.empty() && (!t->unacked.empty() || !t->ack_backlog.empty())) {
      std::unordered_set<std::string_view> written(t->ack_backlog.begin(), t->ack_backlog.end());
      for (const auto& ids : t->unacked) {
        written.insert(ids->begin(), ids->end());
      }
      std::erase_if(got, [&](const Entry& e) { return written.count(e.id) != 0; });
    }
    if (!got.empty()) {
      if (t->buffer.empty()) {
        t->buffer_since = Clock::now();
        after(t, t->delay_timer, t->cfg.max_delay,
              [](Impl* s, Table* tb) { s->maybe_flush(tb, /*deadline_passed=*/true); });
      }
      std::move(got.begin(), got.end(), std::back_inserter(t->buffer));
    }
    maybe_flush(t, false);
    pump_read(t);
    check_stopped();
  }

  // ---- batches ----------------------------------------------------------------------

  void maybe_flush(Table* t, bool deadline_passed) {
    if (closed || t->next || t->buffer.empty()) {
      return;
    }
    bool due = t->buffer.size() >= t->cfg.max_rows || deadline_passed || t->flush_requested ||
               stopping || Clock::now() - t->buffer_since >= t->cfg.max_delay;
    if (!due) {
      return;
    }
    t->flush_requested = false;
    t->delay_timer.reset();
    auto batch = std::make_unique<Batch>();
    std::size_t n = std::min(t->buffer.size(), t->cfg.max_rows);
    batch->entries.assign(std::make_move_iterator(t->buffer.begin()),
                          std::make_move_iterator(t->buffer.begin() + static_cast<long>(n)));
    t->buffer.erase(t->buffer.begin(), t->buffer.begin() + static_cast<long>(n));
    if (!t->buffer.empty()) {
      t->buffer_since = Clock::now();
      after(t, t->delay_timer, t->cfg.max_delay,
            [](Impl* s, Table* tb) { s->maybe_flush(tb, true); });
    }
    batch->started = Clock::now();
    if (!t->inflight) {
      t->inflight = std::move(batch);
      check_deliveries(t, t->inflight.get());
      return;
    }
    t->next = std::move(batch);
    bool redelivered = std::any_of(t->next->entries.begin(), t->next->entries.end(),
                                   [](const Entry& e) { return e.redelivered; });
    if (!redelivered || t->cfg.max_deliveries == 0) {
      prepare(t, *t->next, {}, /*sliced=*/true);
    }
  }

  // Starts writing the in-flight batch: dead letters and the first transaction.
  void launch(Table* t) {
    send_dead(t);
    run_chunk(t);
  }

  // Entries read again (own pending, claimed) carry a delivery count: past max_deliveries
  // they go to the dead letters instead of being tried once more.
  void check_deliveries(Table* t, Batch* batch) {
    auto& b = *batch;
    std::string lo;
    std::string hi;
    for (const auto& e : b.entries) {
      if (e.redelivered) {
        if (lo.empty()) {
          lo = e.id;
        }
        hi = e.id;
      }
    }
    if (lo.empty() || t->cfg.max_deliveries == 0) {
      prepare(t, b, {}, /*sliced=*/false);
      launch(t);
      return;
    }
    auto w = weak_from_this();
    commands.run(delivery_counts(t->stream, opts.group, opts.consumer, lo, hi),
                 [w, t, batch](Result<std::unordered_map<std::string, long long>> r) {
                   auto self = w.lock();
                   if (!self || self->closed || t->inflight.get() != batch) {
                     return;
                   }
                   // Unknown counts (the read failed) never hold a batch back.
                   self->prepare(
                       t, *batch,
                       r.ok() ? std::move(r).value() : std::unordered_map<std::string, long long>{},
                       /*sliced=*/false);
                   self->launch(t);
                 });
  }

  // Decodes and coalesces a batch and builds its first transaction. `sliced` (the batch
  // waits behind one in PostgreSQL): a slice per loop turn; else all at once.
  void prepare(Table* t, Batch& b, std::unordered_map<std::string, long long> deliveries,
               bool sliced) {
    b.coalescer = std::make_unique<Coalescer>(t->row, b.entries, std::move(deliveries),
                                              t->cfg.max_deliveries);
    if (sliced) {
      prepare_slice(t);
    } else {
      advance(t, b, b.entries.size());
    }
  }

  void prepare_slice(Table* t) {
    Batch* b = t->next.get();
    if (b == nullptr || b->ready || !b->coalescer) {
      return;
    }
    if (!advance(t, *b, kPrepareSlice)) {
      after(t, t->prepare_timer, ms(0), [](Impl* s, Table* tb) { s->prepare_slice(tb); });
    }
  }

  // Decodes up to `max` more entries of b; once all are in, builds the statements. True
  // when the batch is ready.
  bool advance(Table* t, Batch& b, std::size_t max) {
    if (b.ready) {
      return true;
    }
    if (!b.coalescer->step(max, scratch)) {
      return false;
    }
    Coalesced c = b.coalescer->take();
    b.coalescer.reset();
    b.changes = std::move(c.changes);
    b.dead = std::move(c.dead);
    b.ack = std::move(c.ack);
    t->stats.coalesced += c.folded;
    if (t->m_coalesced != nullptr) {
      t->m_coalesced->inc(static_cast<double>(c.folded));
    }
    std::vector<std::size_t> all(b.changes.size());
    for (std::size_t i = 0; i < all.size(); ++i) {
      all[i] = i;
    }
    if (!all.empty()) {
      b.prebuilt = build(t, b, all);
      b.chunks.push_back(std::move(all));
    }
    b.ready = true;
    return true;
  }

  std::vector<PgStatement> build(Table* t, const Batch& b, const std::vector<std::size_t>& chunk) {
    return write_statements(t->sql, t->row, b.changes, chunk);
  }

  void run_chunk(Table* t) {
    auto& b = *t->inflight;
    if (b.chunks.empty()) {
      finish_batch(t);
      return;
    }
    auto chunk = b.chunks.front();
    auto started = Clock::now();
    if (pg.state() != LinkState::ready) {
      // Queued in PgConn the batch would only fail at its deadline: retry on our backoff.
      std::string why = pg.last_error().empty() ? "not connected" : pg.last_error();
      on_chunk(t, chunk, started, Error{ErrorKind::closed, "postgres: " + why});
      return;
    }
    auto w = weak_from_this();
    std::vector<PgStatement> statements = b.prebuilt ? std::move(*b.prebuilt) : build(t, b, chunk);
    b.prebuilt.reset();
    if (!t->cfg.version_column.empty() && started >= t->next_prune) {
      // Not again before the interval, even if this transaction fails: pruning can wait.
      t->next_prune = started + opts.tombstone_prune_interval;
      statements.push_back(
          prune_statement(t->sql, opts.tombstone_retention, opts.tombstone_prune_limit));
    }
    pg.transaction(
        std::move(statements),
        [w, t, chunk, started](Result<std::vector<PgResult>> r) {
          auto self = w.lock();
          if (!self || self->closed || !t->inflight) {
            return;
          }
          self->on_chunk(t, chunk, started, std::move(r));
        },
        opts.batch_timeout);
  }

  void on_chunk(Table* t, const std::vector<std::size_t>& chunk, Clock::time_point started,
                Result<std::vector<PgResult>> r) {
    auto& b = *t->inflight;
    if (r.ok()) {
      double took = std::chrono::duration<double, std::milli>(Clock::now() - started).count();
      b.chunks.pop_front();
      for (auto i : chunk) {
        for (auto e : b.changes[i].entries) {
          b.ack.push_back(std::move(b.entries[e].id));  // committed: not needed again
        }
      }
      t->stats.rows_flushed += chunk.size();
      t->stats.batches_flushed += 1;
      t->stats.last_batch_ms = took;
      if (t->m_rows != nullptr) {
        t->m_rows->inc(static_cast<double>(chunk.size()));
        t->m_batches->inc();
        t->m_latency->observe(took / 1000.0);
      }
      if (t->stats.retrying) {
        ctx.log().info("write-behind {}: writing again", t->cfg.name);
      }
      t->stats.retrying = false;
      t->logged_retry = false;
      t->retry_attempt = 0;
      run_chunk(t);
      return;
    }
    const Error& e = r.error();
    if (rejects_data(e)) {
      b.chunks.pop_front();
      if (chunk.size() == 1) {
        const Change& c = b.changes[chunk[0]];
        for (auto i : c.entries) {
          b.dead.emplace_back(i, i == c.winner ? e.message
                                               : "superseded by " + b.entries[c.winner].id +
                                                     ", which PostgreSQL rejected: " + e.message);
        }
        send_dead(t);
      } else {
        // Bisect: each half in its own transaction isolates the rejected rows.
        ++t->stats.bisections;
        auto mid = chunk.begin() + static_cast<long>(chunk.size() / 2);
        b.chunks.emplace_front(mid, chunk.end());
        b.chunks.emplace_front(chunk.begin(), mid);
      }
      run_chunk(t);
      return;
    }
    // Transient (or a problem of the table itself): retry the same rows after a backoff;
    // reading stops meanwhile, so the backlog waits in Redis.
    ++t->stats.retries;
    if (t->m_retries != nullptr) {
      t->m_retries->inc();
    }
    t->stats.retrying = true;
    if (!t->logged_retry) {
      t->logged_retry = true;
      ctx.log().warn("write-behind {}: batch failed, retrying with backoff: {}", t->cfg.name,
                     e.message);
    }
    after(t, t->retry_timer, backoff(t, t->retry_attempt++),
          [](Impl* s, Table* tb) { s->run_chunk(tb); });
  }

  // Moves every entry in b.dead to the dead-letter stream (one script per entry, all in one
  // round trip). The script acknowledges the entry only after the dead letter exists.
  void send_dead(Table* t) {
    auto& b = *t->inflight;
    if (b.dead.empty()) {
      return;
    }
    std::vector<Command> cmds;
    std::vector<std::string> ids;
    for (auto& [i, error] : b.dead) {
      const Entry& e = b.entries[i];
      Json alert{{"type", "write_behind_dead_letter"},
                 {"table", t->cfg.name},
                 {"entry_id", e.id},
                 {"dead_letter_stream", t->dead_stream},
                 {"error", error}};
      std::vector<std::string> argv{opts.group, e.id, error, opts.alert_channel, alert.dump()};
      for (auto& [k, v] : e.fields) {
        argv.push_back(k);
        argv.push_back(v);
      }
      cmds.push_back(Command::eval(script("write_behind_dead"), {t->stream, t->dead_stream}, argv));
      ids.push_back(e.id);
      ctx.log().warn("write-behind {}: entry {} moved to {}: {}", t->cfg.name, e.id, t->dead_stream,
                     excerpt(error, 200));
    }
    t->stats.dead_letters += b.dead.size();
    b.had_dead = true;
    if (t->m_dead != nullptr) {
      t->m_dead->inc(static_cast<double>(b.dead.size()));
    }
    b.dead.clear();
    ++b.dead_inflight;
    auto w = weak_from_this();
    commands.exec(std::move(cmds), ms(0), [w, t](Result<std::vector<Reply>> r) {
      auto self = w.lock();
      if (!self || self->closed) {
        return;
      }
      bool ok =
          r.ok() && std::none_of(r->begin(), r->end(), [](const Reply& x) { return x.is_error(); });
      if (!ok) {
        // Still pending in the stream: read again later and moved again then.
        t->recheck_pending = true;
      }
      if (t->inflight) {
        --t->inflight->dead_inflight;
        if (t->inflight->chunks.empty() && t->inflight->dead_inflight == 0) {
          self->finish_batch(t);
        }
      }
    });
  }

  void finish_batch(Table* t) {
    auto& b = *t->inflight;
    if (!b.chunks.empty() || b.dead_inflight != 0) {
      return;  // the dead letters' callback finishes it
    }
    std::vector<std::string> ids = std::move(b.ack);
    ids.insert(ids.end(), t->ack_backlog.begin(), t->ack_backlog.end());
    t->ack_backlog.clear();
    bool trim = b.had_dead;  // dead letters left the stream: the head may be trimmable now
    t->inflight.reset();
    // The next batch first: PostgreSQL gets it before the loop builds the ACK.
    if (t->next) {
      t->inflight = std::move(t->next);
      if (t->inflight->coalescer) {
        advance(t, *t->inflight, t->inflight->entries.size());  // finish the slices now
      }
      if (t->inflight->ready) {
        launch(t);
      } else {
        check_deliveries(t, t->inflight.get());
      }
    }
    if (!ids.empty() || trim) {
      send_ack(t, std::move(ids));
    }
    maybe_flush(t, false);
    pump_read(t);
    check_stopped();
  }

  void send_ack(Table* t, std::vector<std::string> list) {
    auto ids = std::make_shared<const std::vector<std::string>>(std::move(list));
    t->unacked.push_back(ids);
    Command ack;
    ack.script = &script("write_behind_ack");
    ack.args.reserve(3 + ids->size());
    ack.args.insert(ack.args.end(), {"1", t->stream, opts.group});
    ack.args.insert(ack.args.end(), ids->begin(), ids->end());
    ++t->acks_inflight;
    auto w = weak_from_this();
    commands.run(single<Unit>(std::move(ack),
                              [](Reply&& r) -> Result<Unit> {
                                if (r.is_error()) {
                                  return reply_error(r, "write-behind ack");
                                }
                                return Unit{};
                              }),
                 [w, t, ids](Result<Unit> r) {
                   auto self = w.lock();
                   if (!self || self->closed) {
                     return;
                   }
                   --t->acks_inflight;
                   std::erase(t->unacked, ids);
                   if (r.ok()) {
                     t->stats.entries_acked += ids->size();
                   } else {
                     // Written but not acknowledged: acknowledge with the next batch (or
                     // after a pause) rather than writing the rows again.
                     t->ack_backlog.insert(t->ack_backlog.end(), ids->begin(), ids->end());
                     self->after(t, t->delay_timer, self->backoff(t, 0), [](Impl* s, Table* tb) {
                       if (!tb->inflight && !tb->ack_backlog.empty()) {
                         auto backlog = std::move(tb->ack_backlog);
                         tb->ack_backlog.clear();
                         s->send_ack(tb, std::move(backlog));
                       }
                       s->maybe_flush(tb, true);
                     });
                   }
                   self->check_stopped();
                 });
  }

  // ---- flush, stop, status ------------------------------------------------------------

  void flush(std::string_view name) {
    for (auto& t : tables) {
      if (name.empty() || t->cfg.name == name) {
        t->flush_requested = true;
        maybe_flush(t.get(), true);
      }
    }
  }

  void stop(ms deadline, std::function<void()> done) {
    stopping = true;
    stop_cb = std::move(done);
    stop_timer = ctx.start_timer(std::max(deadline, ms(1)), ms(0), [self = weak_from_this()] {
      if (auto s = self.lock()) {
        s->ctx.log().warn("write-behind: stop deadline passed; unwritten entries stay pending");
        s->finish_stop();
      }
    });
    for (auto& t : tables) {
      maybe_flush(t.get(), true);
    }
    check_stopped();
  }

  void check_stopped() {
    if (!stopping || !stop_cb) {
      return;
    }
    for (auto& t : tables) {
      // A blocking read may still bring entries: they are written before stopping.
      if (t->inflight || t->next || t->reading || !t->buffer.empty() || t->acks_inflight != 0) {
        return;
      }
    }
    finish_stop();
  }

  void finish_stop() {
    stop_timer.reset();
    for (auto& t : tables) {
      t->stats.running = false;
    }
    // Stopped for good: release the readers and timers now, so that the loop can end
    // even while the owner keeps this object until after the loop returns.
    auto keep = shared_from_this();
    shutdown();
    if (stop_cb) {
      auto cb = std::move(stop_cb);
      stop_cb = nullptr;
      cb();
    }
  }

  void refresh_status() {
    auto w = weak_from_this();
    for (auto& tp : tables) {
      Table* t = tp.get();
      WriteBehind wb({.prefix = opts.prefix});
      commands.run(wb.status(t->cfg.name, opts.group), [w, t](Result<WriteBehindStatus> r) {
        auto self = w.lock();
        if (!self || self->closed || !r.ok()) {
          return;
        }
        t->stats.pending = r->pending;
        t->stats.oldest_pending_age_ms = r->oldest_pending_age_ms;
        if (t->m_pending != nullptr) {
          t->m_pending->set(static_cast<double>(t->stats.pending));
          t->m_oldest->set(t->stats.oldest_pending_age_ms < 0
                               ? 0.0
                               : static_cast<double>(t->stats.oldest_pending_age_ms) / 1000.0);
        }
      });
    }
  }

  void shutdown() {
    closed = true;
    for (auto& t : tables) {
      if (t->reader != nullptr) {
        t->reader->close();  // ends a blocking read now; the host owns the connection
      }
      t->delay_timer.reset();
      t->retry_timer.reset();
    }
    status_timer.reset();
    stop_timer.reset();
  }
};

WriteBehindWorker::WriteBehindWorker(Context& ctx, WriteBehindWorkerOptions options)
    : impl_(std::make_shared<Impl>(ctx, postgres_of(ctx), std::move(options))) {}

WriteBehindWorker::~WriteBehindWorker() {
  impl_->shutdown();
}

void WriteBehindWorker::start(std::function<void(Status)> ready) {
  impl_->start(std::move(ready));
}

void WriteBehindWorker::flush(std::string_view table) {
  impl_->flush(table);
}

void WriteBehindWorker::stop(std::chrono::milliseconds deadline, std::function<void()> done) {
  impl_->stop(deadline, std::move(done));
}

WriteBehindStats WriteBehindWorker::stats(std::string_view table) const {
  for (auto& t : impl_->tables) {
    if (t->cfg.name == table) {
      return t->stats;
    }
  }
  return {};
}

const std::string& WriteBehindWorker::consumer() const {
  return impl_->opts.consumer;
}

}  // namespace tierd::wb
