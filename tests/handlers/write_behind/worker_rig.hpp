#pragma once
// A write-behind worker on a TestLoop against real servers, and checks of the final state.

#include <catch2/catch.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "daemon/host_context.hpp"
#include "handlers/write_behind/worker.hpp"
#include "support/helpers.hpp"
#include "support/servers.hpp"
#include "tier/metrics.hpp"
#include "tier/pg/conn.hpp"
#include "tier/uv/async_client.hpp"
#include "tier/writebehind.hpp"

namespace wbtest {

using namespace std::chrono_literals;

/// The worker's logger in tests: warnings and errors only, to stderr.
inline std::shared_ptr<spdlog::logger> quiet_logger() {
  auto log =
      std::make_shared<spdlog::logger>("wb", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  log->set_level(spdlog::level::warn);
  return log;
}

/// A host context for a worker built by a test itself (not through a Rig).
struct TestHost {
  explicit TestHost(tiertest::TestLoop& loop, tier::AsyncClient& redis, tier::PgConn& pg)
      : log(quiet_logger()) {
    env.loop = loop.get();
    env.redis = &redis;
    env.postgres = &pg;
    env.metrics = &metrics;
    env.log = log.get();
    env.instance_id = "test:1";
    ctx = std::make_unique<tierd::HostContext>(env, "write_behind", "");
  }
  tier::metrics::Registry metrics;
  std::shared_ptr<spdlog::logger> log;
  tierd::HostEnv env;
  std::unique_ptr<tierd::HostContext> ctx;
};

/// The table most tests use: (id text primary key, name text not null, n int, doc jsonb,
/// version bigint).
inline void create_items(const tiertest::PgServer& pg, const std::string& table) {
  pg.query("DROP TABLE IF EXISTS " + table + "; CREATE TABLE " + table +
           " (id text PRIMARY KEY, name text NOT NULL, n int, doc jsonb, version bigint)");
}

inline tierd::wb::WriteBehindTable items_table(const std::string& table) {
  tierd::wb::WriteBehindTable t;
  t.name = table;
  t.key_columns = {"id"};
  t.columns = {"name", "n", "doc"};
  t.version_column = "version";
  t.max_rows = 500;
  t.max_delay = 20ms;
  t.retry_min = 20ms;
  t.retry_max = 300ms;
  t.claim_idle = 60000ms;
  return t;
}

class Rig {
 public:
  Rig(const std::string& redis_url, const std::string& pg_conninfo,
      std::vector<tierd::wb::WriteBehindTable> tables, const std::string& prefix,
      const std::string& consumer = "",
      const std::function<void(tierd::wb::WriteBehindWorkerOptions&)>& tweak = {})
      : loop_(std::make_unique<tiertest::TestLoop>()) {
    tier::AsyncOptions ao;
    ao.endpoint = tier::RedisEndpoint::parse(redis_url);
    ao.command_timeout = 2000ms;
    ao.connect_timeout = 1000ms;
    ao.reconnect_min = 20ms;
    ao.reconnect_max = 200ms;
    commands_ = std::make_unique<tier::AsyncClient>(loop_->get(), ao);
    commands_->start();
    tier::PgOptions po;
    po.conninfo = pg_conninfo;
    po.connect_timeout = 1000ms;
    po.query_timeout = 5000ms;
    po.reconnect_min = 20ms;
    po.reconnect_max = 200ms;
    pg_ = std::make_unique<tier::PgConn>(loop_->get(), po);
    pg_->start();
    tierd::wb::WriteBehindWorkerOptions wo;
    wo.tables = std::move(tables);
    wo.prefix = prefix;
    wo.consumer = consumer;
    wo.alert_channel = prefix + "alerts";
    wo.block = 200ms;
    wo.batch_timeout = 5000ms;
    wo.status_interval = 50ms;
    if (tweak) {
      tweak(wo);
    }
    env_.loop = loop_->get();
    env_.redis = commands_.get();
    env_.postgres = pg_.get();
    env_.metrics = &registry_;
    env_.log = log_.get();
    env_.instance_id = "test:1";
    ctx_ = std::make_unique<tierd::HostContext>(env_, "write_behind", prefix);
    worker_ = std::make_unique<tierd::wb::WriteBehindWorker>(*ctx_, wo);
  }
  ~Rig() {
    worker_.reset();
    ctx_.reset();
    pg_.reset();
    commands_.reset();
  }

  /// Starts the worker; the start-up result (Ok or the error).
  tier::Status start() {
    std::optional<tier::Status> out;
    worker_->start([&](tier::Status s) { out.emplace(std::move(s)); });
    loop_->run_until([&] { return out.has_value(); }, 15s);
    if (!out) {
      return tier::Error{tier::ErrorKind::timeout, "worker did not start within 15 s"};
    }
    return *out;
  }
  bool run_until(const std::function<bool()>& pred, std::chrono::milliseconds t = 15s) {
    return loop_->run_until(pred, t);
  }
  tierd::wb::WriteBehindWorker& worker() { return *worker_; }
  tierd::wb::WriteBehindStats stats(const std::string& table) { return worker_->stats(table); }
  tier::metrics::Registry& registry() { return registry_; }
  tiertest::TestLoop& loop() { return *loop_; }
  /// Destroys the worker at once (no stop, no ACK of what it holds).
  void kill() { worker_.reset(); }

 private:
  std::unique_ptr<tiertest::TestLoop> loop_;
  tier::metrics::Registry registry_;
  std::unique_ptr<tier::AsyncClient> commands_;
  std::unique_ptr<tier::PgConn> pg_;
  std::shared_ptr<spdlog::logger> log_ = quiet_logger();
  tierd::HostEnv env_;
  std::unique_ptr<tierd::HostContext> ctx_;
  std::unique_ptr<tierd::wb::WriteBehindWorker> worker_;
};

/// Pending entries of the group (0 when the stream or group does not exist).
inline long long pending(tier::Client& c, const std::string& stream) {
  auto r = c.try_run(tier::raw({"XPENDING", stream, "tierd"}));
  if (!r.ok() || !r->is_array() || r->elements.empty()) {
    return 0;
  }
  return r->elements[0].integer;
}

inline long long xlen(tier::Client& c, const std::string& stream) {
  return c.run(tier::raw({"XLEN", stream})).integer;
}

/// field -> value maps of a stream's entries.
inline std::vector<std::map<std::string, std::string>> entries(tier::Client& c,
                                                               const std::string& s) {
  auto r = c.run(tier::raw({"XRANGE", s, "-", "+"}));
  std::vector<std::map<std::string, std::string>> out;
  for (auto& e : r.elements) {
    std::map<std::string, std::string> m;
    auto& f = e.elements.at(1).elements;
    for (std::size_t i = 0; i + 1 < f.size(); i += 2) {
      m[f[i].str] = f[i + 1].str;
    }
    out.push_back(std::move(m));
  }
  return out;
}

/// The table as "id|name|n|version" lines ordered by id.
inline std::vector<std::string> rows(const tiertest::PgServer& pg, const std::string& table) {
  auto r = pg.query(
      "SELECT id || '|' || name || '|' || coalesce(n::text, 'NULL') || '|' || "
      "coalesce(version::text, 'NULL') FROM " +
      table + " ORDER BY id");
  return r;
}

}  // namespace wbtest
