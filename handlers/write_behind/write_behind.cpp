#include "handlers/write_behind/write_behind.hpp"

#include <spdlog/logger.h>

#include <set>

#include "config/yaml.hpp"
#include "handlers/write_behind/plan.hpp"
#include "handlers/write_behind/worker.hpp"
#include "tier/keys.hpp"
#include "tier/metrics.hpp"
#include "tier/pg/conn.hpp"
#include "tier/uv/async_client.hpp"
#include "tier/writebehind.hpp"

namespace tierd {

namespace {

struct Settings {
  std::vector<wb::WriteBehindTable> tables;
  std::chrono::milliseconds block{1000};
  std::chrono::milliseconds batch_timeout{30000};
  std::chrono::milliseconds stop_timeout{10000};
  std::chrono::seconds tombstone_retention{7 * 24 * 3600};
  std::string alert_channel = "notifications:alerts";
};

std::chrono::milliseconds ms(std::int64_t v) {
  return std::chrono::milliseconds(v);
}

Settings parse_settings(const YAML::Node& section, const std::string& path) {
  std::vector<std::string> keys = common_handler_keys();
  for (const char* k : {"tables", "block_ms", "batch_timeout_ms", "stop_timeout_ms",
                        "alert_channel", "tombstone_retention_s"}) {
    keys.emplace_back(k);
  }
  yaml::Map m(section, path, keys);
  Settings s;
  s.block = ms(m.integer("block_ms", 1000, 1, 60000));
  s.batch_timeout = ms(m.integer("batch_timeout_ms", 30000, 100, 3600000));
  s.stop_timeout = ms(m.integer("stop_timeout_ms", 10000, 1, 3600000));
  s.tombstone_retention = std::chrono::seconds(
      m.integer("tombstone_retention_s", 7 * 24 * 3600, 1, 10LL * 365 * 86400));
  s.alert_channel = m.string("alert_channel", s.alert_channel);
  if (!s.alert_channel.empty()) {
    if (auto e = tier::check_id(s.alert_channel, "alert_channel")) {
      yaml::fail(m.get("alert_channel"), m.path_of("alert_channel"), e->message);
    }
  }
  const YAML::Node tables = m.get("tables");
  const std::string tp = m.path_of("tables");
  if (!tables || !tables.IsSequence() || tables.size() == 0) {
    yaml::fail(tables ? tables : section, tp, "expected a non-empty list of tables");
  }
  std::set<std::string> names;
  for (std::size_t i = 0; i < tables.size(); ++i) {
    const std::string p = tp + "[" + std::to_string(i) + "]";
    yaml::Map t(
        tables[i], p,
        {"name", "pg_table", "key_columns", "columns", "version_column", "max_rows", "max_delay_ms",
         "retry_min_ms", "retry_max_ms", "max_deliveries", "claim_idle_ms"});
    wb::WriteBehindTable c;
    c.name = t.required_string("name");
    if (!names.insert(c.name).second) {
      yaml::fail(t.get("name"), t.path_of("name"), "table '" + c.name + "' is configured twice");
    }
    c.pg_table = t.string("pg_table", "");
    c.key_columns = t.strings("key_columns", {});
    c.columns = t.strings("columns", {});
    c.version_column = t.string("version_column", "");
    c.max_rows = static_cast<std::size_t>(t.integer("max_rows", 1000, 1, 100000));
    c.max_delay = ms(t.integer("max_delay_ms", 200, 0, 3600000));
    c.retry_min = ms(t.integer("retry_min_ms", 100, 1, 3600000));
    c.retry_max = ms(t.integer("retry_max_ms", 10000, 1, 3600000));
    c.max_deliveries = static_cast<int>(t.integer("max_deliveries", 10, 0, 1000000));
    c.claim_idle = ms(t.integer("claim_idle_ms", 30000, 1, 86400000));
    // The worker's own checks, under the YAML path of the key they name, so that
    // --check-config refuses what the daemon could not start.
    if (auto bad = wb::check_table(c)) {
      yaml::fail(t.has(bad->key) ? t.get(bad->key) : tables[i], t.path_of(bad->key), bad->message);
    }
    s.tables.push_back(std::move(c));
  }
  return s;
}

class WriteBehindHandler final : public Handler {
 public:
  WriteBehindHandler(Context& ctx, const Settings& s) : settings_(s) {
    if (ctx.postgres() == nullptr) {
      throw ConfigError(ctx.handler_name(), 0,
                        "write_behind needs PostgreSQL: set postgres.conninfo");
    }
    wb::WriteBehindWorkerOptions o;
    o.tables = s.tables;
    o.prefix = ctx.key_prefix();
    // After a reload the new instance runs next to the old one until that one has written
    // and acknowledged its batch: a distinct consumer name keeps them from reading each
    // other's pending entries.
    static int instances = 0;  // loop thread only
    int n = ++instances;
    o.consumer = n == 1 ? ctx.instance_id() : ctx.instance_id() + ":" + std::to_string(n);
    o.alert_channel = s.alert_channel.empty() ? "" : ctx.key_prefix() + s.alert_channel;
    o.block = s.block;
    o.batch_timeout = s.batch_timeout;
    o.tombstone_retention = s.tombstone_retention;
    worker_ = std::make_unique<wb::WriteBehindWorker>(ctx, o);
  }

  void start() override {
    // The worker logs a table that fails its start-up checks and reports each table's
    // readiness itself (the table stays stopped; its entries wait in Redis).
    worker_->start([](const tier::Status&) {});
  }

  void handle(std::shared_ptr<const Event> event, Done done) override {
    const auto& body = event->body;
    if (body.contains("table")) {
      if (!body["table"].is_string()) {
        done(HandlerResult::fail("\"table\" must be a string"));
        return;
      }
      worker_->flush(body["table"].get<std::string>());
    } else {
      worker_->flush();
    }
    done(HandlerResult::ok());
  }

  void stop(std::function<void()> drained) override {
    worker_->stop(settings_.stop_timeout, std::move(drained));
  }

 private:
  Settings settings_;
  std::unique_ptr<wb::WriteBehindWorker> worker_;
};

}  // namespace

Factory write_behind_factory() {
  return [](const YAML::Node& section, const std::string& path, const HostInfo& host) -> Builder {
    Settings settings = parse_settings(section, path);
    // Refused here rather than when the handler starts: --check-config and a reload say so
    // too, and the message tells where the URL goes.
    if (!host.postgres) {
      yaml::fail(section, path,
                 "the write_behind handler needs PostgreSQL: set TIERD_POSTGRES_URL (or "
                 "postgres.conninfo), or remove this handler section");
    }
    return [settings](Context& ctx) -> std::unique_ptr<Handler> {
      return std::make_unique<WriteBehindHandler>(ctx, settings);
    };
  };
}

}  // namespace tierd
