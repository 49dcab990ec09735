#include "daemon/app.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <csignal>
#include <map>

#include "daemon/dispatcher.hpp"
#include "daemon/http.hpp"
#include "daemon/log_format.hpp"
#include "daemon/notify.hpp"
#include "tier/endpoint.hpp"
#include "tier/keys.hpp"
#include "tier/metrics.hpp"
#include "tier/pg/conn.hpp"
#include "tier/uv/async_client.hpp"
#include "tier/uv/handle.hpp"

namespace tierd {

namespace {

using Clock = std::chrono::steady_clock;

// While a link stays down with the same cause, a reminder this often (not once per retry).
constexpr std::chrono::seconds kStillDownLogInterval{60};

std::string json_escape(const std::string& s) {
  return nlohmann::json(s).dump();
}

/// Brings a counter up to a total kept elsewhere (the links count for themselves).
void sync_counter(tier::metrics::Counter& c, std::uint64_t total) {
  const double t = static_cast<double>(total);
  if (t > c.value()) {
    c.inc(t - c.value());
  }
}

/// Every metric the app itself exports, declared once.
struct AppMetrics {
  using Registry = tier::metrics::Registry;
  template <class M>
  using Family = tier::metrics::Family<M>;
  using Counter = tier::metrics::Counter;
  using Gauge = tier::metrics::Gauge;

  explicit AppMetrics(Registry& r)
      : build_info(r.gauge("tierd_build_info", "Always 1; labels say which build runs")),
        redis_link_up(r.gauge("tierd_redis_link_up",
                              "1 when the Redis link is ready (subscriber: subscribed)")),
        postgres_up(r.gauge("tierd_postgres_up", "1 when the PostgreSQL connection is ready")),
        link_failures(
            r.counter("tierd_link_failures_total",
                      "Connection attempts failed or connections lost, by link and cause")),
        redis_reconnects(
            r.counter("tierd_redis_reconnects_total", "Times a Redis link came back after a loss")),
        postgres_reconnects(r.counter("tierd_postgres_reconnects_total",
                                      "Times the PostgreSQL connection came back after a loss")),
        redis_timeouts(
            r.counter("tierd_redis_timeouts_total", "Redis ops failed by their deadline")),
        redis_ops_failed(r.counter("tierd_redis_ops_failed_total", "Redis ops that failed")),
        redis_pending(r.gauge("tierd_redis_pending_ops", "Redis ops queued or in flight")),
        http_requests(r.counter("tierd_http_requests_total", "HTTP requests answered by a route")),
        http_bad_requests(
            r.counter("tierd_http_bad_requests_total", "HTTP requests refused (400, 413, 431)")),
        http_open(r.gauge("tierd_http_open_connections", "Open HTTP connections")),
        config_reloads(
            r.counter("tierd_config_reloads_total", "Config reloads (SIGHUP), by result")) {}

  Family<Gauge>& build_info;
  Family<Gauge>& redis_link_up;
  Family<Gauge>& postgres_up;
  Family<Counter>& link_failures;
  Family<Counter>& redis_reconnects;
  Family<Counter>& postgres_reconnects;
  Family<Counter>& redis_timeouts;
  Family<Counter>& redis_ops_failed;
  Family<Gauge>& redis_pending;
  Family<Counter>& http_requests;
  Family<Counter>& http_bad_requests;
  Family<Gauge>& http_open;
  Family<Counter>& config_reloads;
};

}  // namespace

std::string version_string() {
  return "tierd " TIERD_VERSION;
}

struct App::Impl {
  Impl(uv_loop_t* l, AppOptions o)
      : loop(l), options(std::move(o)), config(options.config), id(tier::host_pid()) {
    logger = options.logger;
    if (!logger) {
      logger = std::make_shared<spdlog::logger>("tierd",
                                                std::make_shared<spdlog::sinks::stderr_sink_mt>());
      apply_log_format(*logger, LogFormat::text);
    }
    if (config.log_format == "json") {
      apply_log_format(*logger, LogFormat::json);
    }
    logger->set_level(spdlog::level::from_str(config.log_level));
    logger->flush_on(spdlog::level::info);
  }

  uv_loop_t* loop;
  AppOptions options;
  Config config;
  std::string id;
  std::shared_ptr<spdlog::logger> logger;
  tier::metrics::Registry metrics;
  AppMetrics meters{metrics};

  std::unique_ptr<tier::AsyncClient> redis;
  std::unique_ptr<tier::AsyncSubscriber> subscriber;
  std::unique_ptr<tier::PgConn> postgres;  ///< only when postgres.conninfo is set
  std::unique_ptr<Dispatcher> dispatcher;
  std::unique_ptr<HttpServer> http;
  std::unique_ptr<notify::Watchdog> watchdog;
  std::vector<std::unique_ptr<tier::uv::Signal>> signals;

  bool stopping = false;
  bool finished = false;
  int exit_code = 0;
  /// What the daemon knows of one link's health, for logs, /metrics and /readyz.
  struct LinkWatch {
    std::string name;    // "commands", "subscriber", "postgres", or a handler's own link
    std::string system;  // "redis", "postgres"
    bool up = false;
    bool was_ready = false;  // has been ready at least once
    bool down_logged = false;
    Clock::time_point down_since{};
    Clock::time_point last_log{};
    std::string cause;   // failure_cause() of the last failure
    std::string reason;  // the last failure, as the link gave it (no secrets)
  };
  LinkWatch commands_watch{"commands", "redis"};
  LinkWatch subscriber_watch{"subscriber", "redis"};
  LinkWatch postgres_watch{"postgres", "postgres"};
  /// Handlers' own Redis connections (Context::redis_connection), by label.
  /// By connection, not label: after a reload the old and the new instance of a handler
  /// each have a link of the same label for a moment.
  std::map<const tier::AsyncClient*, LinkWatch> handler_links;
  /// Context::report_ready: group -> item -> reporting context -> ready.
  std::map<std::string, std::map<std::string, std::map<const void*, bool>>> handler_parts;

  // A degraded state is logged when it is entered, with its cause, when the cause changes,
  // every kStillDownLogInterval while it lasts, and when it ends: at start as much as later.
  // Links go ready -> disconnected (with the reason) -> connecting -> ready or disconnected.
  void link_state(LinkWatch& w, tier::LinkState s, const std::string& reason) {
    const bool now_up = s == tier::LinkState::ready;
    const bool pg = &w == &postgres_watch;
    if (pg) {
      meters.postgres_up.with().set(now_up ? 1 : 0);
    } else {
      meters.redis_link_up.with({{"link", w.name}}).set(now_up ? 1 : 0);
    }
    if (stopping) {
      return;
    }
    const auto now = Clock::now();
    if (s == tier::LinkState::disconnected) {
      const std::string cause = tier::failure_cause(reason);
      meters.link_failures.with({{"link", w.name}, {"cause", cause}}).inc();
      const bool new_cause = cause != w.cause;
      w.cause = cause;
      w.reason = reason;
      w.up = false;
      if (!w.down_logged) {
        w.down_logged = true;
        w.down_since = now;
        w.last_log = now;
        logger->warn("{} {}: down ({}): {}", w.system, w.name, cause, reason);
        update_status();
      } else if (new_cause || now - w.last_log >= kStillDownLogInterval) {
        w.last_log = now;
        logger->warn("{} {}: still down after {} s ({}): {}", w.system, w.name,
                     std::chrono::duration_cast<std::chrono::seconds>(now - w.down_since).count(),
                     cause, reason);
        update_status();
      }
      return;
    }
    if (!now_up || w.up) {
      return;  // connecting: the outcome is logged, not the attempt
    }
    w.up = true;
    const auto down_for =
        std::chrono::duration_cast<std::chrono::milliseconds>(now - w.down_since).count();
    if (w.was_ready) {
      if (pg) {
        meters.postgres_reconnects.with().inc();
      } else {
        meters.redis_reconnects.with({{"link", w.name}}).inc();
      }
    }
    if (w.was_ready && &w == &subscriber_watch) {
      // Pub/sub is at-most-once: what was published meanwhile is gone (DESIGN §3).
      logger->warn(
          "redis subscriber: re-subscribed after {} ms down; messages published meanwhile are "
          "lost",
          down_for);
    } else if (w.down_logged) {
      logger->info("{} {}: ready after {} ms down", w.system, w.name, down_for);
    } else {
      logger->info("{} {}: ready", w.system, w.name);
    }
    w.was_ready = true;
    w.down_logged = false;
    w.cause.clear();
    w.reason.clear();
    update_status();
  }

  void update_status() {
    if (stopping) {
      return;
    }
    const Readiness r = readiness();
    notify::status(r.ready ? "ready" : "degraded: " + r.json);
  }

  Readiness readiness() const {
    const auto cmd = redis ? redis->state() : tier::LinkState::closed;
    const auto sub = subscriber ? subscriber->state() : tier::LinkState::closed;
    Readiness r;
    r.ready = !stopping && cmd == tier::LinkState::ready && sub == tier::LinkState::ready;
    std::string body;
    // Keys are escaped too: a handler link's label carries a configured name.
    auto link = [&](const std::string& key, tier::LinkState state, const LinkWatch& w) {
      body += "," + json_escape(key) + ":" + json_escape(tier::to_string(state));
      if (state != tier::LinkState::ready && !w.reason.empty()) {
        body += "," + json_escape(key + "_error") + ":" + json_escape(w.cause + ": " + w.reason);
      }
    };
    link("redis_commands", cmd, commands_watch);
    link("redis_subscriber", sub, subscriber_watch);
    if (postgres) {
      const auto pg = postgres->state();
      r.ready = r.ready && pg == tier::LinkState::ready;
      link("postgres", pg, postgres_watch);
    }
    for (const auto& [client, w] : handler_links) {
      const auto state = client->state();
      if (state != tier::LinkState::ready && state != tier::LinkState::closed) {
        r.ready = false;
        link(w.name, state, w);
      }
    }
    // Parts of handlers that do not work (a write_behind table that failed its start-up
    // check stores nothing until the config is fixed), by group.
    for (const auto& [group, items] : handler_parts) {
      std::string down;
      for (const auto& [item, reporters] : items) {
        const bool up = std::any_of(reporters.begin(), reporters.end(),
                                    [](const auto& reporter) { return reporter.second; });
        if (!up) {
          // Appended piecewise: GCC 12 at -O3 warns (-Wrestrict, a false positive) on
          // const char* + std::string&& here.
          if (!down.empty()) {
            down += ',';
          }
          down += json_escape(item);
        }
      }
      if (!down.empty()) {
        r.ready = false;
        body += "," + json_escape(group + "_down") + ":[" + down + "]";
      }
    }
    body = "{\"ready\":" + std::string(r.ready ? "true" : "false") + body;
    if (stopping) {
      body += ",\"stopping\":true";
    }
    body += "}";
    r.json = body;
    return r;
  }

  void refresh_link_counters() {
    auto sync = [&](const char* link, const tier::LinkCounters& c) {
      sync_counter(meters.redis_timeouts.with({{"link", link}}), c.timeouts);
      sync_counter(meters.redis_ops_failed.with({{"link", link}}), c.ops_failed);
    };
    if (redis) {
      sync("commands", redis->counters());
      meters.redis_pending.with({{"link", "commands"}}).set(static_cast<double>(redis->pending()));
    }
    if (subscriber) {
      sync("subscriber", subscriber->counters());
    }
    if (http) {
      const HttpStats h = http->stats();
      sync_counter(meters.http_requests.with(), h.requests);
      sync_counter(meters.http_bad_requests.with(), h.bad_requests);
      meters.http_open.with().set(static_cast<double>(h.open_connections));
    }
  }

  HttpResponse metrics_response() {
    refresh_link_counters();
    HttpResponse r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = metrics.render();
    return r;
  }

  tier::Status start_http() {
    HttpOptions ho;
    ho.host = config.http_host;
    ho.port = config.http_port;
    http = std::make_unique<HttpServer>(loop, ho);
    http->route("GET", "/metrics", [this](const HttpRequest&) { return metrics_response(); });
    http->route("GET", "/healthz", [](const HttpRequest&) {
      // Answering at all proves the loop turns: this runs on it.
      HttpResponse r;
      r.body = "ok\n";
      return r;
    });
    http->route("GET", "/readyz", [this](const HttpRequest&) {
      const Readiness rd = readiness();
      HttpResponse r;
      r.status = rd.ready ? 200 : 503;
      r.content_type = "application/json";
      r.body = rd.json + "\n";
      return r;
    });
    return http->start();
  }

  void close_all() {
    if (subscriber) {
      subscriber->close();
    }
    if (redis) {
      redis->close();
    }
    if (postgres) {
      postgres->close();
    }
    if (http) {
      http->close();
    }
    if (watchdog) {
      watchdog->stop();
    }
    for (auto& s : signals) {
      s->close();
    }
    finished = true;
    logger->info("stopped");
  }
};

App::App(uv_loop_t* loop, AppOptions options)
    : impl_(std::make_unique<Impl>(loop, std::move(options))) {}

App::~App() {
  // Handlers first (they hold references into the links), then the links.
  impl_->dispatcher.reset();
  impl_->subscriber.reset();
  impl_->redis.reset();
  impl_->postgres.reset();
  impl_->http.reset();
  impl_->watchdog.reset();
  impl_->signals.clear();
}

tier::Status App::start() {
  Impl& m = *impl_;
  const Config& c = m.config;
  m.meters.build_info.with({{"version", TIERD_VERSION}}).set(1);
  for (const char* link : {"commands", "subscriber"}) {
    m.meters.redis_link_up.with({{"link", link}}).set(0);
  }

  tier::AsyncOptions ao;
  ao.endpoint = tier::RedisEndpoint::parse(c.redis_url);
  ao.connect_timeout = c.redis_connect_timeout;
  ao.command_timeout = c.redis_command_timeout;
  ao.client_name = "tierd";
  ao.label = "commands";
  m.redis = std::make_unique<tier::AsyncClient>(m.loop, ao);
  m.redis->on_state(
      [&m](tier::LinkState s, const std::string& why) { m.link_state(m.commands_watch, s, why); });

  if (!c.postgres_conninfo.empty()) {
    tier::PgOptions po;
    po.conninfo = c.postgres_conninfo;
    po.allow_password = c.postgres_conninfo_from_env;
    po.application_name = "tierd";
    // Server notices ("table ... does not exist, skipping") go to the log, in its format.
    po.on_notice = [log = m.logger.get()](std::string_view severity, std::string_view message) {
      if (severity == "WARNING") {
        log->warn("postgres {}: {}", severity, message);
      } else {
        log->info("postgres {}: {}", severity, message);
      }
    };
    try {
      m.postgres = std::make_unique<tier::PgConn>(m.loop, po);
    } catch (const std::exception& e) {
      m.logger->error("postgres: {}", e.what());
      return tier::make_error(tier::ErrorKind::invalid, std::string("postgres: ") + e.what());
    }
    m.postgres->on_state([&m](tier::LinkState s, const std::string& why) {
      m.link_state(m.postgres_watch, s, why);
    });
    m.meters.postgres_up.with().set(0);
  }

  DispatcherEnv env;
  env.loop = m.loop;
  env.redis = m.redis.get();
  env.postgres = m.postgres.get();
  env.metrics = &m.metrics;
  env.log = m.logger.get();
  env.instance_id = m.id;
  env.watch_link = [&m](const std::string& label, tier::AsyncClient& link) {
    m.handler_links.insert_or_assign(&link, Impl::LinkWatch{label, "redis"});
    m.meters.redis_link_up.with({{"link", label}}).set(0);
    link.on_state([&m, client = &link](tier::LinkState s, const std::string& why) {
      // Closed on purpose (its handler stopped, e.g. after a reload) is not down; the
      // series may belong to the new instance's link of the same label by now.
      if (s == tier::LinkState::closed) {
        return;
      }
      if (auto it = m.handler_links.find(client); it != m.handler_links.end()) {
        m.link_state(it->second, s, why);
      }
    });
  };
  env.unwatch_link = [&m](tier::AsyncClient& link) {
    const auto it = m.handler_links.find(&link);
    if (it == m.handler_links.end()) {
      return;
    }
    const std::string label = it->second.name;
    m.handler_links.erase(it);
    const bool still_used = std::any_of(m.handler_links.begin(), m.handler_links.end(),
                                        [&](const auto& e) { return e.second.name == label; });
    if (!still_used) {
      m.meters.redis_link_up.remove({{"link", label}});
    }
  };
  env.report_ready = [&m](const void* who, const std::string& group, const std::string& item,
                          std::optional<bool> ready) {
    if (ready) {
      m.handler_parts[group][item][who] = *ready;
      return;
    }
    // The context is going away: forget its reports, and parts nobody reports any more.
    for (auto g = m.handler_parts.begin(); g != m.handler_parts.end();) {
      for (auto i = g->second.begin(); i != g->second.end();) {
        i->second.erase(who);
        i = i->second.empty() ? g->second.erase(i) : std::next(i);
      }
      g = g->second.empty() ? m.handler_parts.erase(g) : std::next(g);
    }
  };
  m.dispatcher = std::make_unique<Dispatcher>(env);
  try {
    m.dispatcher->install(c, resolve(c, m.options.env));
  } catch (const ConfigError& e) {
    m.logger->error("{}", e.what());
    return tier::make_error(tier::ErrorKind::invalid, e.what());
  } catch (const std::exception& e) {
    // A builder that fails on what its factory validated is a bug, but it must end the
    // start with a message and EX_CONFIG, not std::terminate.
    m.logger->error("cannot build the handlers: {}", e.what());
    return tier::make_error(tier::ErrorKind::invalid,
                            std::string("cannot build the handlers: ") + e.what());
  }

  tier::SubscriberOptions so;
  so.link = ao;
  so.link.label = "subscriber";
  so.link.client_name = "tierd:sub";
  so.patterns = c.subscribe;
  m.subscriber =
      std::make_unique<tier::AsyncSubscriber>(m.loop, so, [&m](const tier::PushMessage& msg) {
        if (m.dispatcher) {
          m.dispatcher->on_message(msg.pattern, msg.channel, msg.payload);
        }
      });
  m.subscriber->on_state([&m](tier::LinkState s, const std::string& why) {
    m.link_state(m.subscriber_watch, s, why);
  });

  if (auto st = m.start_http(); !st.ok()) {
    m.logger->error("http: cannot listen on {}:{}: {}", c.http_host, c.http_port,
                    st.error().message);
    return st.error();
  }

  if (m.options.handle_signals) {
    m.signals.push_back(
        std::make_unique<tier::uv::Signal>(m.loop, SIGTERM, [this] { shutdown(); }));
    m.signals.push_back(std::make_unique<tier::uv::Signal>(m.loop, SIGINT, [this] { shutdown(); }));
    m.signals.push_back(std::make_unique<tier::uv::Signal>(m.loop, SIGHUP, [this] { reload(); }));
  }

  m.redis->start();
  m.subscriber->start();
  if (m.postgres) {
    m.postgres->start();
  }
  m.watchdog = std::make_unique<notify::Watchdog>(m.loop);
  m.watchdog->start();

  m.logger->info("{} started: redis {}, http {}:{}, {} handler(s), config {}", version_string(),
                 ao.endpoint.redacted(), c.http_host, m.http->port(), c.handlers.size(), c.source);
  notify::ready("connecting to Redis");
  return tier::Unit{};
}

bool App::reload() {
  Impl& m = *impl_;
  if (m.stopping) {
    return false;
  }
  try {
    Config c = m.options.config_path.empty()
                   ? parse_config(default_config_text(), "<built-in>", m.options.env)
                   : load_config(m.options.config_path, m.options.env);
    return apply(c);
  } catch (const ConfigError& e) {
    m.meters.config_reloads.with({{"result", "error"}}).inc();
    m.logger->error("reload refused, keeping the running config: {}", e.what());
    return false;
  }
}

bool App::apply(const Config& next) {
  Impl& m = *impl_;
  if (m.stopping || !m.dispatcher) {
    return false;  // a shutdown is draining; nothing new starts
  }
  notify::reloading();
  Config c = next;
  // These are bound to live connections and sockets; changing them needs a restart.
  auto keep = [&](bool changed, const char* what) {
    if (changed) {
      m.logger->warn("reload: {} changed; it takes effect on restart", what);
    }
  };
  keep(c.redis_url != m.config.redis_url, "redis.url");
  keep(c.subscribe != m.config.subscribe, "subscribe");
  keep(c.http_host != m.config.http_host || c.http_port != m.config.http_port, "http.listen");
  keep(c.postgres_conninfo != m.config.postgres_conninfo, "postgres.conninfo");
  c.redis_url = m.config.redis_url;
  c.subscribe = m.config.subscribe;
  c.http_host = m.config.http_host;
  c.http_port = m.config.http_port;
  c.postgres_conninfo = m.config.postgres_conninfo;
  c.postgres_conninfo_from_env = m.config.postgres_conninfo_from_env;
  try {
    m.dispatcher->install(c, resolve(c, m.options.env));
  } catch (const std::exception& e) {
    m.meters.config_reloads.with({{"result", "error"}}).inc();
    m.logger->error("reload refused, keeping the running config: {}", e.what());
    notify::ready();
    return false;
  }
  if (c.log_format != m.config.log_format) {
    apply_log_format(*m.logger, c.log_format == "json" ? LogFormat::json : LogFormat::text);
  }
  m.config = c;
  m.logger->set_level(spdlog::level::from_str(c.log_level));
  m.meters.config_reloads.with({{"result", "ok"}}).inc();
  m.logger->info("reloaded {}: {} handler(s)", c.source, c.handlers.size());
  notify::ready();
  return true;
}

void App::shutdown() {
  Impl& m = *impl_;
  if (m.stopping) {
    return;
  }
  m.stopping = true;
  notify::stopping();
  const std::size_t busy = m.dispatcher ? m.dispatcher->busy() : 0;
  m.logger->info("shutting down: draining {} event(s), up to {} ms", busy,
                 m.config.shutdown_timeout.count());
  // Stop taking messages first; the command link stays up for the work in flight.
  if (m.subscriber) {
    m.subscriber->close();
  }
  if (!m.dispatcher) {
    m.close_all();
    return;
  }
  m.dispatcher->drain(m.config.shutdown_timeout, [&m](bool clean) {
    if (!clean) {
      m.logger->warn("shutdown: {} event(s) still in flight after {} ms; abandoned",
                     m.dispatcher->busy(), m.config.shutdown_timeout.count());
    }
    m.close_all();
  });
}

bool App::finished() const {
  return impl_->finished;
}
int App::exit_code() const {
  return impl_->exit_code;
}
Readiness App::readiness() const {
  return impl_->readiness();
}
int App::http_port() const {
  return impl_->http ? impl_->http->port() : 0;
}
tier::metrics::Registry& App::metrics() {
  return impl_->metrics;
}
Dispatcher& App::dispatcher() {
  return *impl_->dispatcher;
}
const Config& App::config() const {
  return impl_->config;
}
spdlog::logger& App::log() {
  return *impl_->logger;
}

}  // namespace tierd
