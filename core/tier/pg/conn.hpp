#pragma once
// PostgreSQL on the caller's libuv loop (DESIGN §2): libpq in non-blocking mode, driven
// by a uv_poll on PQsocket. Jobs (one or more statements) run one at a time in order;
// each has a deadline. libpq's PQcancel blocks, so a job past its deadline drops the
// connection instead, and the link reconnects with backoff and jitter. The password comes
// only from libpq's own sources (PGPASSWORD, ~/.pgpass, passfile=), never from the
// conninfo. Every method must be called on the loop's thread.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tier/pg/sql_text.hpp"
#include "tier/result.hpp"
#include "tier/uv/link.hpp"

typedef struct uv_loop_s uv_loop_t;

namespace tier {

struct PgOptions {
  /// libpq conninfo ("host=... dbname=...") or postgresql:// URL. A password in it is
  /// refused (use PGPASSWORD, ~/.pgpass or passfile=) unless allow_password is set.
  std::string conninfo;
  /// Accept a password in the conninfo: set when it came from the environment
  /// (TIERD_POSTGRES_URL), never from a config file.
  bool allow_password = false;
  /// Time allowed for connect + authentication. 0ms is not allowed (defaults apply).
  std::chrono::milliseconds connect_timeout{5000};
  /// Default deadline of a job, from the moment it is submitted.
  std::chrono::milliseconds query_timeout{10000};
  /// statement_timeout set on the session at connect. 0ms = query_timeout.
  std::chrono::milliseconds statement_timeout{0};
  /// Reconnect backoff: first delay, and the cap it doubles up to (with jitter).
  std::chrono::milliseconds reconnect_min{100};
  std::chrono::milliseconds reconnect_max{5000};
  /// Most jobs queued or running; past it new jobs fail at once with `closed`.
  std::size_t max_pending = 10000;
  std::string application_name = "tierd";
  /// Name used in log lines and errors.
  std::string label = "postgres";
  /// Server notices and warnings (severity such as "NOTICE", one-line message). libpq's
  /// own default prints them to stderr, past the caller's log format; unset, they are
  /// dropped.
  std::function<void(std::string_view severity, std::string_view message)> on_notice;
};

/// One statement of a job.
struct PgStatement {
  std::string sql;
  /// Bound as text parameters $1..$n; nullopt is SQL NULL. With no params and outside a
  /// pipeline the statement goes as a simple query (several statements allowed).
  std::vector<std::optional<std::string>> params;
  /// For `COPY ... FROM STDIN`: the data sent (COPY text or csv format, as the SQL says).
  std::optional<std::string> copy_data;
};

/// What one statement returned (the last result when a simple query had several).
struct PgResult {
  std::vector<std::string> columns;
  std::vector<std::vector<std::optional<std::string>>> rows;
  std::string command;     ///< PQcmdStatus, e.g. "INSERT 0 3"
  long long affected = 0;  ///< PQcmdTuples as a number (0 when empty)
};

struct PgCounters {
  std::uint64_t connects = 0;
  std::uint64_t disconnects = 0;  ///< connections lost or dropped after being ready
  std::uint64_t timeouts = 0;     ///< jobs failed by their deadline
  std::uint64_t jobs_ok = 0;
  std::uint64_t jobs_failed = 0;
};

using PgCallback = std::function<void(Result<std::vector<PgResult>>)>;

/// True for errors worth retrying as they are: the connection (io, timeout, closed),
/// serialization failure, deadlock, admin shutdown, statement timeout, and the classes
/// 08 (connection), 53 (insufficient resources), 57 (operator intervention).
bool pg_transient(const Error& e);
/// True for errors that a retry cannot fix because of the data: classes 22 (data
/// exception) and 23 (integrity constraint violation).
bool pg_data_error(const Error& e);
namespace detail {
class PgLink;
}

class PgConn {
 public:
  /// Throws InvalidArgument when the conninfo does not parse or carries a password.
  PgConn(uv_loop_t* loop, PgOptions options);
  /// Closes without calling back: pending callbacks and the state callback are released
  /// unrun. Call close() first to have pending jobs fail with `closed`.
  ~PgConn();
  PgConn(const PgConn&) = delete;
  PgConn& operator=(const PgConn&) = delete;

  /// Starts connecting. Jobs submitted before the link is ready wait (until their deadline).
  void start();
  void close();

  /// Runs the statements in order, one round trip each; stops at the first error (then
  /// rolls back a transaction the job left open). `done` gets one result per statement.
  void run(std::vector<PgStatement> statements, PgCallback done,
           std::chrono::milliseconds timeout = std::chrono::milliseconds(0));
  /// One statement.
  void query(std::string sql, std::vector<std::optional<std::string>> params,
             std::function<void(Result<PgResult>)> done,
             std::chrono::milliseconds timeout = std::chrono::milliseconds(0));
  /// BEGIN; statements; COMMIT as one job, in one round trip when it can be: without COPY
  /// in libpq pipeline mode; with COPY and no parameters as one query string (each
  /// statement then holds exactly one SQL command; inline values with pg_quote_literal);
  /// COPY with parameters goes one statement per round trip. Any error rolls the whole
  /// transaction back. `done` gets the results of the statements (not of BEGIN/COMMIT).
  void transaction(std::vector<PgStatement> statements, PgCallback done,
                   std::chrono::milliseconds timeout = std::chrono::milliseconds(0));

  LinkState state() const;
  /// Called on every state change with a one-line reason (never containing secrets).
  void on_state(StateCallback cb);
  PgCounters counters() const;
  /// Jobs queued or running.
  std::size_t pending() const;
  /// The last connection error (empty once connected).
  std::string last_error() const;

 private:
  std::shared_ptr<detail::PgLink> link_;
};

}  // namespace tier
