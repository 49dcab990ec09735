// Write-behind benchmark (run it with bench/writebehind_run.sh, which starts the servers).
//   writebehind_bench preload REDIS_URL N [STREAM]       XADD N entries (~200-byte rows)
//   writebehind_bench worker REDIS_URL CONNINFO N ROWS   drain them with WriteBehindWorker
//   writebehind_bench ceiling CONNINFO N ROWS            PostgreSQL alone on the same rows
//   writebehind_bench live REDIS_URL CONNINFO N ROWS     worker while a producer adds N
// Each prints one line of key=value figures on stdout.
#include <libpq-fe.h>
#include <sys/resource.h>
#include <uv.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "daemon/host_context.hpp"
#include "handlers/write_behind/plan.hpp"
#include "handlers/write_behind/worker.hpp"
#include "tier/pg/conn.hpp"
#include "tier/sync/client.hpp"
#include "tier/uv/async_client.hpp"
#include "tier/writebehind.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

const char* kTable = "analysis_results";

// Row i of the data set: ~200 bytes of JSON, keys spread over 100 projects.
tier::Json make_row(long i) {
  char hash[65];
  unsigned long long x = 0x9e3779b97f4a7c15ULL * static_cast<unsigned long long>(i + 1);
  for (int k = 0; k < 64; ++k) {
    x ^= x >> 13;
    x *= 0xff51afd7ed558ccdULL;
    hash[k] = "0123456789abcdef"[(x >> 7) & 15];
  }
  hash[64] = '\0';
  char project[32];
  std::snprintf(project, sizeof project, "proj-%04ld", i % 100);
  return tier::Json{{"project_id", project},
                    {"code_hash", hash},
                    {"result",
                     {{"score", static_cast<double>(i % 1000) / 1000.0},
                      {"issues", i % 17},
                      {"lang", "python"},
                      {"summary", "no blocking issue found"}}},
                    {"updated_at", "2026-11-28T05:00:00Z"}};
}

// CPU time (user + system) of this process so far, in seconds.
double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto s = [](const timeval& tv) { return static_cast<double>(tv.tv_sec) + tv.tv_usec / 1e6; };
  return s(u.ru_utime) + s(u.ru_stime);
}

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

long rss_kib(const char* field) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind(field, 0) == 0) {
      return std::stol(line.substr(std::string(field).size() + 1));
    }
  }
  return -1;
}

void preload(tier::Client& client, long from, long to, const std::string& table) {
  tier::WriteBehind wb;
  const long chunk = 2000;
  for (long start = from; start < to; start += chunk) {
    tier::Pipeline p;
    for (long i = start; i < std::min(to, start + chunk); ++i) {
      p.add(wb.enqueue(table, make_row(i), 1), [](tier::Result<std::string> r) {
        if (!r.ok()) {
          throw std::runtime_error(r.error().describe());
        }
      });
    }
    p.run(client);
  }
}

int cmd_preload(const std::string& url, long n, const std::string& table) {
  tier::Client client(url);
  auto t0 = Clock::now();
  preload(client, 0, n, table);
  double s = seconds_since(t0);
  std::printf("preload rows=%ld seconds=%.3f rows_per_s=%.0f\n", n, s, static_cast<double>(n) / s);
  return 0;
}

tierd::wb::WriteBehindTable table_config(std::size_t max_rows) {
  tierd::wb::WriteBehindTable t;
  t.name = kTable;
  t.key_columns = {"project_id", "code_hash"};
  t.columns = {"result", "updated_at"};
  t.version_column = "version";
  t.max_rows = max_rows;
  t.max_delay = 50ms;
  return t;
}

// Runs a worker until `target` entries are acknowledged; `producer` (optional) runs in a
// thread meanwhile. Prints figures.
int run_worker(const std::string& url, const std::string& conninfo, long target,
               std::size_t max_rows, const char* mode, std::function<void()> producer) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  tier::AsyncOptions ao;
  ao.endpoint = tier::RedisEndpoint::parse(url);
  ao.command_timeout = 10s;
  tier::AsyncClient commands(&loop, ao);
  commands.start();
  tier::PgOptions po;
  po.conninfo = conninfo;
  po.query_timeout = 60s;
  tier::PgConn pg(&loop, po);
  pg.start();
  tierd::wb::WriteBehindWorkerOptions wo;
  wo.tables = {table_config(max_rows)};
  wo.block = 100ms;
  wo.batch_timeout = 60s;
  wo.status_interval = 0ms;
  tier::metrics::Registry metrics;
  auto log =
      std::make_shared<spdlog::logger>("wb", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  log->set_level(spdlog::level::warn);
  tierd::HostEnv env;
  env.loop = &loop;
  env.redis = &commands;
  env.postgres = &pg;
  env.metrics = &metrics;
  env.log = log.get();
  env.instance_id = tierd::wb::default_consumer_name();
  auto ctx = std::make_unique<tierd::HostContext>(env, "write_behind", "");
  auto worker = std::make_unique<tierd::wb::WriteBehindWorker>(*ctx, wo);
  bool started = false;
  worker->start([&](tier::Status s) {
    if (!s.ok()) {
      std::fprintf(stderr, "worker start: %s\n", s.error().message.c_str());
      std::exit(1);
    }
    started = true;
  });
  uv_timer_t tick;
  uv_timer_init(&loop, &tick);
  uv_timer_start(
      &tick, [](uv_timer_t*) {}, 5, 5);
  while (!started) {
    uv_run(&loop, UV_RUN_ONCE);
  }
  std::thread prod;
  auto t0 = Clock::now();
  const double cpu0 = cpu_seconds();
  if (producer) {
    prod = std::thread(producer);
  }
  long rss_peak = 0;
  auto next_sample = Clock::now();
  while (static_cast<long>(worker->stats(kTable).entries_acked) < target) {
    uv_run(&loop, UV_RUN_ONCE);
    if (Clock::now() >= next_sample) {  // /proc reads are not free: sample every 50 ms
      rss_peak = std::max(rss_peak, rss_kib("VmRSS:"));
      next_sample = Clock::now() + 50ms;
    }
    if (seconds_since(t0) > 600) {
      std::fprintf(stderr, "worker: timed out\n");
      return 1;
    }
  }
  double s = seconds_since(t0);
  // The worker's own CPU per row (the producer thread of `live` counts too there).
  const double cpu_us_per_row = (cpu_seconds() - cpu0) * 1e6 / static_cast<double>(target);
  rss_peak = std::max(rss_peak, rss_kib("VmHWM:"));
  if (prod.joinable()) {
    prod.join();
  }
  auto st = worker->stats(kTable);
  std::printf(
      "%s rows=%ld seconds=%.3f rows_per_s=%.0f batches=%llu avg_batch_ms=%.1f retries=%llu "
      "cpu_us_per_row=%.2f rss_peak_kib=%ld\n",
      mode, target, s, static_cast<double>(target) / s,
      static_cast<unsigned long long>(st.batches_flushed),
      s * 1000.0 / static_cast<double>(std::max<std::uint64_t>(st.batches_flushed, 1)),
      static_cast<unsigned long long>(st.retries), cpu_us_per_row, rss_peak);
  worker.reset();
  ctx.reset();
  pg.close();
  commands.close();
  uv_timer_stop(&tick);
  uv_close(reinterpret_cast<uv_handle_t*>(&tick), nullptr);
  for (int i = 0; i < 100 && uv_loop_close(&loop) == UV_EBUSY; ++i) {
    uv_run(&loop, UV_RUN_NOWAIT);
  }
  return 0;
}

// The worker's own transactions (plan.cpp's statements through PgConn on a loop), built
// before the clock starts, one after the other: the worker's SQL without Redis or decoding.
int cmd_sqlonly(const std::string& conninfo, long n, std::size_t batch) {
  auto cfg = table_config(batch);
  const auto sql = tierd::wb::sql_table(cfg);
  auto layout = tierd::wb::row_layout(cfg);
  layout.is_json[static_cast<std::size_t>(layout.colidx.at("result"))] = true;
  std::vector<std::vector<tier::PgStatement>> txns;
  tierd::wb::RowScratch scratch;
  for (long start = 0; start < n; start += static_cast<long>(batch)) {
    std::vector<tierd::wb::Entry> entries;
    for (long i = start; i < std::min(n, start + static_cast<long>(batch)); ++i) {
      entries.push_back({std::to_string(i) + "-0",
                         {{"op", "upsert"}, {"version", "1"}, {"row", make_row(i).dump()}}});
    }
    auto c = tierd::wb::coalesce(layout, entries, {}, 0, scratch);
    std::vector<std::size_t> all(c.changes.size());
    for (std::size_t i = 0; i < all.size(); ++i) {
      all[i] = i;
    }
    txns.push_back(tierd::wb::write_statements(sql, layout, c.changes, all));
  }
  uv_loop_t loop;
  uv_loop_init(&loop);
  tier::PgOptions po;
  po.conninfo = conninfo;
  po.query_timeout = 60s;
  tier::PgConn pg(&loop, po);
  pg.start();
  std::size_t done = 0;
  bool failed = false;
  bool ddl = false;
  pg.transaction(tierd::wb::tombstone_ddl(), [&](tier::Result<std::vector<tier::PgResult>> r) {
    failed = !r.ok();
    ddl = true;
  });
  while (!ddl) {
    uv_run(&loop, UV_RUN_ONCE);
  }
  auto t0 = Clock::now();
  std::function<void()> next = [&] {
    if (done == txns.size()) {
      return;
    }
    pg.transaction(std::move(txns[done]), [&](tier::Result<std::vector<tier::PgResult>> r) {
      if (!r.ok()) {
        std::fprintf(stderr, "sqlonly: %s\n", r.error().message.c_str());
        failed = true;
        return;
      }
      ++done;
      next();
    });
  };
  next();
  while (done < txns.size() && !failed) {
    uv_run(&loop, UV_RUN_ONCE);
  }
  double s = seconds_since(t0);
  pg.close();
  for (int i = 0; i < 100 && uv_loop_close(&loop) == UV_EBUSY; ++i) {
    uv_run(&loop, UV_RUN_NOWAIT);
  }
  if (failed) {
    return 1;
  }
  std::printf("sqlonly rows=%ld seconds=%.3f rows_per_s=%.0f batch=%zu\n", n, s,
              static_cast<double>(n) / s, batch);
  return 0;
}

// --- PostgreSQL alone (blocking libpq: this is the reference, not code on a loop) ---------

PGconn* connect_pg(const std::string& conninfo) {
  PGconn* c = PQconnectdb(conninfo.c_str());
  if (PQstatus(c) != CONNECTION_OK) {
    std::fprintf(stderr, "postgres: %s", PQerrorMessage(c));
    std::exit(1);
  }
  return c;
}

void exec(PGconn* c, const std::string& sql) {
  PGresult* r = PQexec(c, sql.c_str());
  auto st = PQresultStatus(r);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_COPY_IN) {
    std::fprintf(stderr, "postgres: %s in %s\n", PQresultErrorMessage(r), sql.c_str());
    std::exit(1);
  }
  PQclear(r);
}

std::string copy_line(long i) {
  auto row = make_row(i);
  std::string line;
  tier::pg_copy_escape(line, row["project_id"].get<std::string>());
  line += '\t';
  tier::pg_copy_escape(line, row["code_hash"].get<std::string>());
  line += '\t';
  tier::pg_copy_escape(line, row["result"].dump());
  line += '\t';
  tier::pg_copy_escape(line, row["updated_at"].get<std::string>());
  line += "\t1\n";
  return line;
}

const char* kUpsert =
    " ON CONFLICT (project_id, code_hash) DO UPDATE SET result = EXCLUDED.result, updated_at = "
    "EXCLUDED.updated_at, version = EXCLUDED.version WHERE t.version IS NULL OR t.version < "
    "EXCLUDED.version";

// COPY into a staging table + INSERT ... ON CONFLICT, `batch` rows per transaction.
double ceiling_copy(PGconn* c, long n, long batch) {
  exec(c, "TRUNCATE analysis_results");
  // Rows are made before the clock starts: this measures PostgreSQL only.
  std::vector<std::string> data;
  for (long start = 0; start < n; start += batch) {
    std::string d;
    for (long i = start; i < std::min(n, start + batch); ++i) {
      d += copy_line(i);
    }
    data.push_back(std::move(d));
  }
  auto t0 = Clock::now();
  for (auto& d : data) {
    exec(c, "BEGIN");
    exec(c,
         "CREATE TEMP TABLE s ON COMMIT DROP AS SELECT project_id, code_hash, result, "
         "updated_at, version FROM analysis_results WITH NO DATA");
    exec(c, "COPY s (project_id, code_hash, result, updated_at, version) FROM STDIN");
    if (PQputCopyData(c, d.data(), static_cast<int>(d.size())) != 1 ||
        PQputCopyEnd(c, nullptr) != 1) {
      std::fprintf(stderr, "copy: %s", PQerrorMessage(c));
      std::exit(1);
    }
    PGresult* r = PQgetResult(c);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
      std::fprintf(stderr, "copy: %s", PQresultErrorMessage(r));
      std::exit(1);
    }
    PQclear(r);
    while ((r = PQgetResult(c)) != nullptr) {
      PQclear(r);
    }
    exec(c, std::string("INSERT INTO analysis_results AS t (project_id, code_hash, result, "
                        "updated_at, version) SELECT * FROM s") +
                kUpsert);
    exec(c, "COMMIT");
  }
  return seconds_since(t0);
}

// Multi-row INSERT ... VALUES with bound parameters, `batch` rows per transaction.
double ceiling_values(PGconn* c, long n, long batch) {
  exec(c, "TRUNCATE analysis_results");
  batch = std::min(batch, 13000L);  // 5 parameters a row, at most 65535 per statement
  std::vector<std::vector<std::string>> params;
  for (long i = 0; i < n; ++i) {
    auto row = make_row(i);
    params.push_back({row["project_id"].get<std::string>(), row["code_hash"].get<std::string>(),
                      row["result"].dump(), row["updated_at"].get<std::string>(), "1"});
  }
  auto t0 = Clock::now();
  for (long start = 0; start < n; start += batch) {
    long end = std::min(n, start + batch);
    std::string sql =
        "INSERT INTO analysis_results AS t (project_id, code_hash, result, updated_at, version) "
        "VALUES ";
    std::vector<const char*> values;
    int k = 1;
    for (long i = start; i < end; ++i) {
      sql += i == start ? "(" : ",(";
      for (int j = 0; j < 5; ++j) {
        sql += (j ? ",$" : "$") + std::to_string(k++);
        values.push_back(params[static_cast<std::size_t>(i)][static_cast<std::size_t>(j)].c_str());
      }
      sql += ")";
    }
    sql += kUpsert;
    PGresult* r = PQexecParams(c, sql.c_str(), static_cast<int>(values.size()), nullptr,
                               values.data(), nullptr, nullptr, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
      std::fprintf(stderr, "values: %s", PQresultErrorMessage(r));
      std::exit(1);
    }
    PQclear(r);
  }
  return seconds_since(t0);
}

int cmd_ceiling(const std::string& conninfo, long n, long batch) {
  PGconn* c = connect_pg(conninfo);
  double one = ceiling_copy(c, n, n);
  double batched = ceiling_copy(c, n, batch);
  double values = ceiling_values(c, n, batch);
  exec(c, "TRUNCATE analysis_results");
  PQfinish(c);
  auto rate = [&](double s) { return static_cast<double>(n) / s; };
  std::printf(
      "ceiling rows=%ld copy_one_txn_rows_per_s=%.0f copy_batched_rows_per_s=%.0f "
      "values_batched_rows_per_s=%.0f batch=%ld\n",
      n, rate(one), rate(batched), rate(values), batch);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> a(argv + 1, argv + argc);
  try {
    if (a.size() >= 3 && a[0] == "preload") {
      return cmd_preload(a[1], std::stol(a[2]), a.size() > 3 ? a[3] : kTable);
    }
    if (a.size() == 5 && a[0] == "worker") {
      return run_worker(a[1], a[2], std::stol(a[3]), std::stoul(a[4]), "worker", nullptr);
    }
    if (a.size() == 4 && a[0] == "sqlonly") {
      return cmd_sqlonly(a[1], std::stol(a[2]), std::stoul(a[3]));
    }
    if (a.size() == 4 && a[0] == "ceiling") {
      return cmd_ceiling(a[1], std::stol(a[2]), std::stol(a[3]));
    }
    if (a.size() == 5 && a[0] == "live") {
      long n = std::stol(a[3]);
      std::string url = a[1];
      return run_worker(url, a[2], n, std::stoul(a[4]), "live", [url, n] {
        tier::Client client(url);
        preload(client, 0, n, kTable);
      });
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "writebehind_bench: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr,
               "usage: writebehind_bench preload URL N | worker URL CONNINFO N ROWS | ceiling "
               "CONNINFO N ROWS | live URL CONNINFO N ROWS\n");
  return 2;
}
