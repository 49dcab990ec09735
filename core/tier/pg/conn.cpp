#include "tier/pg/conn.hpp"

#include <libpq-fe.h>
#include <uv.h>

#include <algorithm>
#include <deque>
#include <random>

#include "tier/errors.hpp"
#include "tier/pg/conninfo.hpp"
#include "tier/sigpipe.hpp"
#include "tier/uv/handle.hpp"
#include "tier/uv/link.hpp"
#include "tier/uv/resolve.hpp"

namespace tier {

bool pg_transient(const Error& e) {
  if (e.transient()) {
    return true;
  }
  const std::string& c = e.code;
  if (c == "40001" || c == "40P01" || c == "57014") {
    return true;
  }
  return c.starts_with("08") || c.starts_with("53") || c.starts_with("57");
}

bool pg_data_error(const Error& e) {
  return e.kind == ErrorKind::reply && (e.code.starts_with("22") || e.code.starts_with("23"));
}

namespace detail {
namespace {

using Clock = std::chrono::steady_clock;
using ms = std::chrono::milliseconds;

constexpr ms kTick{20};
// COPY data goes to libpq in slices of this size, so a full send buffer is met early.
constexpr std::size_t kCopyChunk = 64 * 1024;

// How a job's statements travel.
enum class JobMode {
  sequential,  // one round trip per statement
  pipelined,   // libpq pipeline mode: all at once, extended protocol (no COPY)
  script,      // one simple query holding every statement (COPY allowed, no parameters)
};

struct Job {
  std::vector<PgStatement> statements;
  JobMode mode = JobMode::sequential;
  Clock::time_point deadline;
  PgCallback done;
  std::vector<PgResult> results;
  std::optional<Error> error;
  std::size_t sent = 0;   // statements sent (sequential mode)
  std::size_t ended = 0;  // statements whose results are complete
  bool sync_seen = false;
  bool copying = false;
  std::size_t copy_stmt = 0;  // the statement whose COPY data is being sent
  std::size_t copy_offset = 0;
};

// libpq messages span lines ("ERROR: ...\nDETAIL: ..."): one line each, for the logs.
std::string trim(const std::string& in) {
  std::string s;
  s.reserve(in.size());
  for (char c : in) {
    if (c == '\n' || c == '\t' || c == '\r') {
      if (!s.empty() && s.back() != ' ') {
        s += ' ';
      }
    } else {
      s += c;
    }
  }
  while (!s.empty() && s.back() == ' ') {
    s.pop_back();
  }
  return s;
}

Error server_error(const PGresult* r, const std::string& label) {
  Error e{ErrorKind::reply, label + ": " + trim(PQresultErrorMessage(r))};
  const char* code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  if (code != nullptr) {
    e.code = code;
  }
  return e;
}

PgResult convert(const PGresult* r) {
  PgResult out;
  int nf = PQnfields(r);
  int nt = PQntuples(r);
  out.columns.reserve(static_cast<std::size_t>(nf));
  for (int j = 0; j < nf; ++j) {
    out.columns.emplace_back(PQfname(r, j));
  }
  out.rows.reserve(static_cast<std::size_t>(nt));
  for (int i = 0; i < nt; ++i) {
    std::vector<std::optional<std::string>> row;
    row.reserve(static_cast<std::size_t>(nf));
    for (int j = 0; j < nf; ++j) {
      if (PQgetisnull(r, i, j)) {
        row.emplace_back(std::nullopt);
      } else {
        row.emplace_back(std::string(PQgetvalue(r, i, j), PQgetlength(r, i, j)));
      }
    }
    out.rows.push_back(std::move(row));
  }
  out.command = PQcmdStatus(const_cast<PGresult*>(r));
  const char* n = PQcmdTuples(const_cast<PGresult*>(r));
  out.affected = (n != nullptr && *n != '\0') ? std::atoll(n) : 0;
  return out;
}

}  // namespace

class PgLink : public std::enable_shared_from_this<PgLink> {
 public:
  PgLink(uv_loop_t* loop, PgOptions o)
      : loop_(loop), opts_(defaults(std::move(o))), rc_(loop, policy(opts_), hooks()) {
    ignore_sigpipe();
    const ConninfoParts parts = parse_conninfo(opts_.conninfo);
    if (parts.has_password && !opts_.allow_password) {
      throw InvalidArgument(
          "postgres conninfo carries a password: refused; use PGPASSWORD, ~/.pgpass or "
          "passfile=");
    }
    const std::string& host = parts.host;
    const std::string& hostaddr = parts.hostaddr;
    // libpq resolves host names with a blocking getaddrinfo: the Reconnector resolves them
    // on libuv's thread pool first and libpq gets the address.
    if (hostaddr.empty() && !host.empty() && host.front() != '/' && !is_ip_literal(host)) {
      if (host.find(',') != std::string::npos) {
        throw InvalidArgument("postgres conninfo: several hosts need hostaddr= (IP addresses)");
      }
      resolve_host_ = host;
    }
  }

  ~PgLink() { drop_connection(); }

  void start() {
    if (rc_.started() || rc_.state() == LinkState::closed) {
      return;
    }
    rc_.start(resolve_host_, opts_.label);
  }

  void close() {
    if (rc_.state() == LinkState::closed) {
      return;
    }
    auto keep = shared_from_this();
    rc_.close();
    drop_connection();
    Error closed{ErrorKind::closed, opts_.label + ": connection closed"};
    if (current_) {
      auto job = std::move(current_);
      current_.reset();
      complete(job, closed);
    }
    auto queue = std::move(queue_);
    queue_.clear();
    for (auto& job : queue) {
      complete(job, closed);
    }
  }

  /// The owner is being destroyed: close without calling back into its code (pending
  /// callbacks and the state callback are released unrun).
  void abandon() {
    rc_.forget_state_callback();
    if (current_) {
      current_->done = nullptr;
    }
    for (auto& job : queue_) {
      job->done = nullptr;
    }
    close();
  }

  void submit(std::vector<PgStatement> statements, JobMode mode, ms timeout, PgCallback done) {
    if (rc_.state() == LinkState::closed) {
      ++counters_.jobs_failed;
      done(Error{ErrorKind::closed, opts_.label + ": connection closed"});
      return;
    }
    if (statements.empty()) {
      done(std::vector<PgResult>{});
      return;
    }
    if (pending() >= opts_.max_pending) {
      ++counters_.jobs_failed;
      done(Error{ErrorKind::closed, opts_.label + ": too many pending jobs (max_pending " +
                                        std::to_string(opts_.max_pending) + ")"});
      return;
    }
    auto job = std::make_shared<Job>();
    job->statements = std::move(statements);
    job->mode = mode;
    job->results.resize(job->statements.size());
    job->deadline = Clock::now() + (timeout.count() > 0 ? timeout : opts_.query_timeout);
    job->done = std::move(done);
    queue_.push_back(std::move(job));
    pump();
  }

  LinkState state() const { return rc_.state(); }
  void on_state(StateCallback cb) { rc_.on_state(std::move(cb)); }
  PgCounters counters() const {
    PgCounters c = counters_;
    c.disconnects = rc_.disconnects();
    return c;
  }
  std::size_t pending() const { return queue_.size() + (current_ ? 1 : 0); }
  std::string last_error() const { return rc_.last_error(); }

 private:
  static PgOptions defaults(PgOptions o) {
    if (o.connect_timeout.count() <= 0) {
      o.connect_timeout = ms{5000};
    }
    if (o.query_timeout.count() <= 0) {
      o.query_timeout = ms{10000};
    }
    if (o.statement_timeout.count() <= 0) {
      o.statement_timeout = o.query_timeout;
    }
    return o;
  }
  static uv::ReconnectPolicy policy(const PgOptions& o) {
    return {o.connect_timeout, o.reconnect_min, o.reconnect_max, kTick};
  }
  uv::Reconnector::Hooks hooks() {
    return {
        .hold = [this] { return std::shared_ptr<void>(shared_from_this()); },
        .dial = [this](const std::string& address) { begin_connect(address); },
        .drop = [this] { drop_connection(); },
        .tick = [this](Clock::time_point now) { check_deadlines(now); },
    };
  }

  // ---- connection -------------------------------------------------------------------

  void begin_connect(const std::string& hostaddr) {
    std::string options = "-c statement_timeout=" + std::to_string(opts_.statement_timeout.count());
    std::vector<const char*> keys{"dbname", "application_name", "options"};
    std::vector<const char*> vals{opts_.conninfo.c_str(), opts_.application_name.c_str(),
                                  options.c_str()};
    if (!hostaddr.empty()) {
      keys.push_back("hostaddr");
      vals.push_back(hostaddr.c_str());
    }
    keys.push_back(nullptr);
    vals.push_back(nullptr);
    conn_ = PQconnectStartParams(keys.data(), vals.data(), /*expand_dbname=*/1);
    if (conn_ == nullptr) {
      reset_connection("connect: out of memory");
      return;
    }
    if (PQstatus(conn_) == CONNECTION_BAD) {
      reset_connection("connect: " + trim(PQerrorMessage(conn_)));
      return;
    }
    PQsetNoticeReceiver(conn_, &PgLink::on_notice, this);
    // libpq's connect loop starts as if the last poll had returned WRITING.
    watch(UV_WRITABLE);
  }

  // Runs inside libpq calls on the loop's thread; `arg` is the link, which outlives conn_.
  static void on_notice(void* arg, const PGresult* r) {
    auto* self = static_cast<PgLink*>(arg);
    if (!self->opts_.on_notice) {
      return;
    }
    const char* severity = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char* text = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    self->opts_.on_notice(severity != nullptr ? severity : "NOTICE",
                          trim(text != nullptr ? text : PQresultErrorMessage(r)));
  }

  // Points the poll handle at the connection's current socket; libpq may change the
  // socket during connect (another address, SSL fallback), so the handle follows it.
  void watch(int events) {
    int fd = conn_ != nullptr ? PQsocket(conn_) : -1;
    if (fd < 0) {
      reset_connection("connect: no socket");
      return;
    }
    if (poll_ && poll_fd_ != fd) {
      close_poll();
    }
    if (!poll_) {
      poll_ = std::make_unique<uv::Poll>(loop_, fd);
      poll_fd_ = fd;
      poll_events_ = 0;
    }
    if (events != poll_events_) {
      poll_events_ = events;
      poll_->start(events, [this](int status, int ev) { on_poll(status, ev); });
    }
  }

  void close_poll() {
    poll_.reset();
    poll_fd_ = -1;
    poll_events_ = 0;
  }

  void drop_connection() {
    close_poll();
    if (conn_ != nullptr) {
      PQfinish(conn_);
      conn_ = nullptr;
    }
  }

  // Drops the connection, fails the job on it, and schedules a new connection. Jobs
  // still queued were never sent: they wait for the next connection or their deadline.
  void reset_connection(const std::string& why, std::optional<Error> job_error = std::nullopt) {
    if (rc_.state() == LinkState::closed) {
      return;
    }
    auto keep = shared_from_this();
    auto job = std::move(current_);
    current_.reset();
    rc_.lost(why);
    if (job) {
      complete(job, job_error ? *job_error : Error{ErrorKind::io, opts_.label + ": " + why});
    }
  }

  void on_poll(int status, int events) {
    auto keep = shared_from_this();
    const LinkState state = rc_.state();
    if (status < 0 && state == LinkState::connecting) {
      continue_connect();  // libpq finds the socket error itself and says what it is
      return;
    }
    if (status < 0) {
      // libuv reports POLLERR (e.g. a reset) as EBADF: let libpq read what the server said
      // last (often "terminating connection due to administrator command") for the error.
      std::string why = std::string("connection lost: socket error: ") + uv_strerror(status);
      if (state == LinkState::ready && PQconsumeInput(conn_) != 0) {
        drain();
      }
      if (conn_ != nullptr && *PQerrorMessage(conn_) != '\0') {
        why = "connection lost: " + trim(PQerrorMessage(conn_));
      }
      reset_connection(why);
      return;
    }
    if (state == LinkState::connecting) {
      continue_connect();
      return;
    }
    if (state != LinkState::ready) {
      return;
    }
    if ((events & UV_WRITABLE) != 0) {
      if (!flush()) {
        return;
      }
      if (current_ && current_->copying) {
        if (!push_copy()) {
          return;
        }
      }
    }
    if ((events & UV_READABLE) != 0) {
      if (PQconsumeInput(conn_) == 0) {
        reset_connection("connection lost: " + trim(PQerrorMessage(conn_)));
        return;
      }
      drain();
    }
    // On EOF libpq closes the socket itself (after handing over the server's last error):
    // drop the poll handle at once so that it never watches a closed descriptor.
    if (conn_ != nullptr && PQstatus(conn_) == CONNECTION_BAD) {
      reset_connection("connection lost: " + trim(PQerrorMessage(conn_)));
    }
  }

  void continue_connect() {
    PostgresPollingStatusType st = PQconnectPoll(conn_);
    // libpq may have closed the socket and opened another one with the same number (next
    // address, SSL or GSS fallback): a fresh poll handle never watches a stale socket.
    close_poll();
    switch (st) {
      case PGRES_POLLING_READING:
        watch(UV_READABLE);
        return;
      case PGRES_POLLING_WRITING:
        watch(UV_WRITABLE);
        return;
      case PGRES_POLLING_OK:
        break;
      default:
        reset_connection("connect: " + trim(PQerrorMessage(conn_)));
        return;
    }
    if (PQsetnonblocking(conn_, 1) != 0) {
      reset_connection("cannot set non-blocking mode");
      return;
    }
    ++counters_.connects;
    watch(UV_READABLE);
    if (conn_ == nullptr) {
      return;
    }
    rc_.ready("connected");
    pump();
  }

  // ---- jobs -------------------------------------------------------------------------

  void pump() {
    if (rc_.state() != LinkState::ready || current_ || queue_.empty()) {
      return;
    }
    current_ = std::move(queue_.front());
    queue_.pop_front();
    auto job = current_;
    if (job->mode == JobMode::script) {
      std::string sql;
      for (const auto& st : job->statements) {
        sql += sql.empty() ? "" : ";\n";
        sql += st.sql;
      }
      if (PQsendQuery(conn_, sql.c_str()) != 1) {
        reset_connection("send failed: " + trim(PQerrorMessage(conn_)));
        return;
      }
      job->sent = job->statements.size();
    } else if (job->mode == JobMode::pipelined) {
      if (PQenterPipelineMode(conn_) != 1) {
        reset_connection("cannot enter pipeline mode: " + trim(PQerrorMessage(conn_)));
        return;
      }
      for (auto& st : job->statements) {
        if (!send_params(st)) {
          return;
        }
      }
      if (PQpipelineSync(conn_) != 1) {
        reset_connection("pipeline sync failed: " + trim(PQerrorMessage(conn_)));
        return;
      }
      job->sent = job->statements.size();
    } else if (!send_next()) {
      return;
    }
    if (flush()) {
      drain();
    }
  }

  bool send_params(const PgStatement& st) {
    std::vector<const char*> values;
    values.reserve(st.params.size());
    for (const auto& p : st.params) {
      values.push_back(p ? p->c_str() : nullptr);
    }
    if (PQsendQueryParams(conn_, st.sql.c_str(), static_cast<int>(values.size()), nullptr,
                          values.data(), nullptr, nullptr, 0) != 1) {
      reset_connection("send failed: " + trim(PQerrorMessage(conn_)));
      return false;
    }
    return true;
  }

  bool send_next() {
    auto& job = *current_;
    const PgStatement& st = job.statements[job.sent++];
    if (st.params.empty()) {
      if (PQsendQuery(conn_, st.sql.c_str()) != 1) {
        reset_connection("send failed: " + trim(PQerrorMessage(conn_)));
        return false;
      }
      return true;
    }
    return send_params(st);
  }

  // Sends what libpq buffered; keeps the poll on writable while data remains. False when
  // the connection was dropped.
  bool flush() {
    if (conn_ == nullptr) {
      return false;
    }
    int rc = PQflush(conn_);
    if (rc < 0) {
      reset_connection("connection lost while sending: " + trim(PQerrorMessage(conn_)));
      return false;
    }
    bool more = rc == 1 || (current_ && current_->copying);
    watch(more ? (UV_READABLE | UV_WRITABLE) : UV_READABLE);
    return conn_ != nullptr;
  }

  bool push_copy() {
    auto& job = *current_;
    static const std::string kEmpty;
    const auto& data = job.statements[job.copy_stmt].copy_data;
    const std::string& src = data ? *data : kEmpty;
    while (job.copy_offset < src.size()) {
      std::size_t n = std::min(kCopyChunk, src.size() - job.copy_offset);
      int rc = PQputCopyData(conn_, src.data() + job.copy_offset, static_cast<int>(n));
      if (rc < 0) {
        reset_connection("COPY failed: " + trim(PQerrorMessage(conn_)));
        return false;
      }
      if (rc == 0) {
        return flush();  // the send buffer is full: continue when writable
      }
      job.copy_offset += n;
    }
    int rc = PQputCopyEnd(conn_, nullptr);
    if (rc < 0) {
      reset_connection("COPY failed: " + trim(PQerrorMessage(conn_)));
      return false;
    }
    if (rc == 1) {
      job.copying = false;
    }
    return flush();
  }

  // Reads every complete result; finishes statements and the job as they end.
  void drain() {
    while (current_ && conn_ != nullptr && PQisBusy(conn_) == 0) {
      auto job = current_;
      PGresult* r = PQgetResult(conn_);
      if (r == nullptr) {
        if (job->mode == JobMode::script) {
          finish_current();  // the end of the whole query string
          continue;
        }
        if (job->mode == JobMode::pipelined) {
          if (job->sync_seen) {
            finish_current();
          } else {
            ++job->ended;
          }
          continue;
        }
        ++job->ended;
        if (job->error || job->ended == job->statements.size()) {
          finish_current();
        } else if (!send_next() || !flush()) {
          return;
        }
        continue;
      }
      ExecStatusType st = PQresultStatus(r);
      std::size_t index = job->mode == JobMode::sequential ? job->sent - 1 : job->ended;
      // In a script each statement ends with one result (COPY: after its COPY_IN).
      if (job->mode == JobMode::script && st != PGRES_COPY_IN && job->ended + 1 < job->sent) {
        ++job->ended;
      }
      switch (st) {
        case PGRES_COPY_IN:
          PQclear(r);
          job->copying = true;
          job->copy_stmt = index;
          job->copy_offset = 0;
          if (!push_copy()) {
            return;
          }
          continue;
        case PGRES_COPY_OUT:
        case PGRES_COPY_BOTH:
          PQclear(r);
          reset_connection("COPY TO is not supported",
                           Error{ErrorKind::invalid, opts_.label + ": COPY TO is not supported"});
          return;
        case PGRES_TUPLES_OK:
        case PGRES_COMMAND_OK:
        case PGRES_EMPTY_QUERY:
          if (index < job->results.size()) {
            job->results[index] = convert(r);
          }
          break;
        case PGRES_FATAL_ERROR:
          if (!job->error) {
            job->error = server_error(r, opts_.label);
          }
          break;
        case PGRES_PIPELINE_SYNC:
          job->sync_seen = true;
          break;
        default:  // PIPELINE_ABORTED (after the error already kept), notices
          break;
      }
      PQclear(r);
    }
  }

  void finish_current() {
    auto job = std::move(current_);
    current_.reset();
    if (job->mode == JobMode::pipelined) {
      PQexitPipelineMode(conn_);
    }
    // A job that failed inside a transaction leaves it aborted: roll back before the
    // next job so that it starts clean.
    if (job->error && PQtransactionStatus(conn_) != PQTRANS_IDLE) {
      auto rb = std::make_shared<Job>();
      rb->statements.push_back(PgStatement{"ROLLBACK", {}, std::nullopt});
      rb->results.resize(1);
      rb->deadline = Clock::now() + opts_.query_timeout;
      queue_.push_front(std::move(rb));
    }
    if (job->error) {
      complete(job, *job->error);
    } else {
      complete(job, std::move(job->results));
    }
    pump();
  }

  void complete(const std::shared_ptr<Job>& job, Result<std::vector<PgResult>> r) {
    if (r.ok()) {
      ++counters_.jobs_ok;
    } else {
      ++counters_.jobs_failed;
    }
    auto cb = std::move(job->done);
    job->done = nullptr;
    if (cb) {
      cb(std::move(r));
    }
  }

  void check_deadlines(Clock::time_point now) {
    if (current_ && now >= current_->deadline) {
      ++counters_.timeouts;
      // PQcancel blocks; dropping the connection ends the statement on the server too.
      reset_connection("no answer before the deadline; connection dropped",
                       Error{ErrorKind::timeout, opts_.label + ": no answer before the deadline"});
    }
    for (auto it = queue_.begin(); it != queue_.end();) {
      if (now >= (*it)->deadline) {
        auto job = *it;
        it = queue_.erase(it);
        ++counters_.timeouts;
        const std::string& last_error = rc_.last_error();
        std::string why =
            rc_.state() == LinkState::ready
                ? "queued past its deadline"
                : "not connected" + (last_error.empty() ? std::string() : " (" + last_error + ")");
        complete(job, Error{ErrorKind::timeout, opts_.label + ": " + why});
      } else {
        ++it;
      }
    }
  }

  uv_loop_t* loop_;
  PgOptions opts_;
  std::string resolve_host_;
  PGconn* conn_ = nullptr;
  std::unique_ptr<uv::Poll> poll_;
  int poll_fd_ = -1;
  int poll_events_ = 0;
  std::deque<std::shared_ptr<Job>> queue_;
  std::shared_ptr<Job> current_;
  PgCounters counters_;
  uv::Reconnector rc_;
};

}  // namespace detail

PgConn::PgConn(uv_loop_t* loop, PgOptions options)
    : link_(std::make_shared<detail::PgLink>(loop, std::move(options))) {}

PgConn::~PgConn() {
  link_->abandon();
}

void PgConn::start() {
  link_->start();
}

void PgConn::close() {
  link_->close();
}

void PgConn::run(std::vector<PgStatement> statements, PgCallback done,
                 std::chrono::milliseconds timeout) {
  link_->submit(std::move(statements), detail::JobMode::sequential, timeout, std::move(done));
}

void PgConn::query(std::string sql, std::vector<std::optional<std::string>> params,
                   std::function<void(Result<PgResult>)> done, std::chrono::milliseconds timeout) {
  std::vector<PgStatement> st;
  st.push_back(PgStatement{std::move(sql), std::move(params), std::nullopt});
  link_->submit(std::move(st), detail::JobMode::sequential, timeout,
                [done = std::move(done)](Result<std::vector<PgResult>> r) {
                  if (!r.ok()) {
                    done(r.error());
                  } else {
                    done(std::move(r->front()));
                  }
                });
}

void PgConn::transaction(std::vector<PgStatement> statements, PgCallback done,
                         std::chrono::milliseconds timeout) {
  bool has_copy = std::any_of(statements.begin(), statements.end(),
                              [](const PgStatement& s) { return s.copy_data.has_value(); });
  bool has_params = std::any_of(statements.begin(), statements.end(),
                                [](const PgStatement& s) { return !s.params.empty(); });
  std::size_t n = statements.size();
  std::vector<PgStatement> all;
  all.reserve(n + 2);
  all.push_back(PgStatement{"BEGIN", {}, std::nullopt});
  for (auto& s : statements) {
    all.push_back(std::move(s));
  }
  all.push_back(PgStatement{"COMMIT", {}, std::nullopt});
  // COPY cannot run in pipeline mode; parameters cannot go in a simple query. Without
  // COPY: a pipeline; with COPY and no parameters: one query string (the server reads
  // the COPY data in the middle of it); otherwise one round trip per statement.
  auto mode = !has_copy    ? detail::JobMode::pipelined
              : has_params ? detail::JobMode::sequential
                           : detail::JobMode::script;
  link_->submit(
      std::move(all), mode, timeout, [n, done = std::move(done)](Result<std::vector<PgResult>> r) {
        if (!r.ok()) {
          done(r.error());
          return;
        }
        // COMMIT of an aborted transaction answers ROLLBACK instead of an error.
        if (r->back().command == "ROLLBACK") {
          done(Error{ErrorKind::reply, "postgres: transaction rolled back", "40000"});
          return;
        }
        std::vector<PgResult> out(std::make_move_iterator(r->begin() + 1),
                                  std::make_move_iterator(r->begin() + 1 + static_cast<long>(n)));
        done(std::move(out));
      });
}

LinkState PgConn::state() const {
  return link_->state();
}
void PgConn::on_state(StateCallback cb) {
  link_->on_state(std::move(cb));
}
PgCounters PgConn::counters() const {
  return link_->counters();
}
std::size_t PgConn::pending() const {
  return link_->pending();
}
std::string PgConn::last_error() const {
  return link_->last_error();
}

}  // namespace tier
