#include "handlers/provider_health/provider_health.hpp"

#include <spdlog/logger.h>

#include <algorithm>
#include <set>

#include "config/yaml.hpp"
#include "handlers/http_headers.hpp"
#include "tier/cache.hpp"
#include "tier/dedup.hpp"
#include "tier/keys.hpp"
#include "tier/metrics.hpp"
#include "tier/pubsub.hpp"
#include "tier/uv/async_client.hpp"
#include "tier/uv/http_client.hpp"

namespace tierd {

namespace {

using Json = nlohmann::json;
using ms = std::chrono::milliseconds;

struct Provider {
  std::string name;
  std::string url;
  std::string method = "GET";
  std::vector<std::string> headers;
  std::string body;
  std::vector<long> expect_status;  // empty = any 2xx
  ms timeout{5000};
  std::chrono::seconds interval{30};
  int unhealthy_after = 3;
  int healthy_after = 2;
  ms degraded_latency{0};
};

struct Settings {
  std::vector<Provider> providers;
  ms lease{15000};
};

Settings parse_settings(const YAML::Node& section, const std::string& path, const HostInfo& host) {
  std::vector<std::string> keys = common_handler_keys();
  keys.emplace_back("providers");
  keys.emplace_back("leader_lease_ms");
  yaml::Map m(section, path, keys);
  Settings s;
  s.lease = ms(m.integer("leader_lease_ms", 15000, 300, 600000));
  const YAML::Node list = m.get("providers");
  const std::string lp = m.path_of("providers");
  if (!list || !list.IsSequence() || list.size() == 0) {
    yaml::fail(list ? list : section, lp, "expected a non-empty list of providers");
  }
  std::set<std::string> names;
  for (std::size_t i = 0; i < list.size(); ++i) {
    const std::string p = lp + "[" + std::to_string(i) + "]";
    yaml::Map y(list[i], p,
                {"name", "url", "method", "headers", "body", "expect_status", "timeout_ms",
                 "interval_s", "unhealthy_after", "healthy_after", "degraded_latency_ms"});
    Provider c;
    c.name = y.required_string("name");
    if (auto bad = tier::check_id(c.name, "provider name")) {
      yaml::fail(y.get("name"), y.path_of("name"), bad->message);
    }
    if (!names.insert(c.name).second) {
      yaml::fail(y.get("name"), y.path_of("name"), "provider '" + c.name + "' is configured twice");
    }
    c.url = y.required_string("url");
    if (!(c.url.starts_with("http://") || c.url.starts_with("https://")) ||
        c.url.find_first_of(" \t\r\n") != std::string::npos) {
      yaml::fail(y.get("url"), y.path_of("url"), "expected an http:// or https:// URL");
    }
    c.method = y.string("method", "GET");
    if (c.method != "GET" && c.method != "HEAD" && c.method != "POST") {
      yaml::fail(y.get("method"), y.path_of("method"), "expected GET, HEAD or POST");
    }
    c.headers = http_headers(y.get("headers"), y.path_of("headers"), host.env);
    c.body = y.string("body", "");
    const YAML::Node expect = y.get("expect_status");
    if (expect) {
      if (!expect.IsSequence()) {
        yaml::fail(expect, y.path_of("expect_status"), "expected a list of HTTP statuses");
      }
      for (std::size_t j = 0; j < expect.size(); ++j) {
        const std::string sp = y.path_of("expect_status") + "[" + std::to_string(j) + "]";
        long code = 0;
        try {
          code = expect[j].as<long>();
        } catch (const YAML::Exception&) {
          yaml::fail(expect[j], sp, "expected an HTTP status");
        }
        if (code < 100 || code > 599) {
          yaml::fail(expect[j], sp, "expected an HTTP status (100..599)");
        }
        c.expect_status.push_back(code);
      }
    }
    c.timeout = ms(y.integer("timeout_ms", 5000, 1, 600000));
    c.interval = std::chrono::seconds(y.integer("interval_s", 30, 1, 86400));
    c.unhealthy_after = static_cast<int>(y.integer("unhealthy_after", 3, 1, 1000));
    c.healthy_after = static_cast<int>(y.integer("healthy_after", 2, 1, 1000));
    c.degraded_latency = ms(y.integer("degraded_latency_ms", 0, 0, 600000));
    s.providers.push_back(std::move(c));
  }
  return s;
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<ms>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class ProviderHealth final : public Handler {
 public:
  ProviderHealth(Context& ctx, Settings s)
      : ctx_(ctx),
        settings_(std::move(s)),
        cache_({.prefix = ctx.key_prefix()}),
        status_keys_(cache_),
        probes_(ctx.metrics().counter("tierd_provider_probes_total",
                                      "Provider probes by provider and outcome")),
        latency_(ctx.metrics().histogram("tierd_provider_probe_seconds", "Provider probe latency")),
        up_(ctx.metrics().gauge("tierd_provider_up",
                                "1 healthy or degraded, 0 unhealthy, by provider (leader only)")),
        leader_(ctx.metrics().gauge("tierd_provider_health_leader",
                                    "1 while this instance leads the provider probes")) {
    for (const auto& p : settings_.providers) {
      states_.push_back(State{&p});
    }
  }

  ~ProviderHealth() override { *alive_ = false; }

  void start() override {
    leader_.with({{"handler", ctx_.handler_name()}}).set(0);  // shown from the start
    campaign_ = ctx_.lead("provider_health:" + ctx_.handler_name(), settings_.lease,
                          [this](bool leading) { on_leadership(leading); });
  }

  void handle(std::shared_ptr<const Event> event, Done done) override {
    if (!leading_) {
      done(HandlerResult::ok());  // the leader probes
      return;
    }
    const Json& body = event->body;
    std::string only;
    if (body.contains("provider")) {
      if (!body["provider"].is_string()) {
        done(HandlerResult::fail("\"provider\" must be a string"));
        return;
      }
      only = body["provider"].get<std::string>();
      if (std::none_of(states_.begin(), states_.end(),
                       [&](const State& s) { return s.p->name == only; })) {
        done(HandlerResult::fail("unknown provider '" + tier::excerpt(only, 64) + "'"));
        return;
      }
    }
    for (auto& s : states_) {
      if (only.empty() || s.p->name == only) {
        probe(s);
      }
    }
    done(HandlerResult::ok());
  }

  void stop(std::function<void()> drained) override {
    leading_ = false;
    campaign_.reset();  // steps down: another instance takes over
    for (auto& s : states_) {
      s.timer.reset();
    }
    *alive_ = false;
    leader_.with({{"handler", ctx_.handler_name()}}).set(0);
    drained();
  }

 private:
  struct State {
    const Provider* p;
    std::string status = "unknown";
    int failures = 0;
    int successes = 0;
    bool probing = false;
    TimerHandle timer;
  };

  void on_leadership(bool leading) {
    leading_ = leading;
    leader_.with({{"handler", ctx_.handler_name()}}).set(leading ? 1 : 0);
    ctx_.log().info("provider_health {}: {} the probes", ctx_.handler_name(),
                    leading ? "leads" : "no longer leads");
    for (auto& s : states_) {
      s.timer.reset();
      if (leading) {
        State* sp = &s;
        probe(s);
        s.timer = ctx_.start_timer(s.p->interval, s.p->interval, [this, sp] { probe(*sp); });
      }
    }
  }

  void probe(State& s) {
    if (!leading_ || s.probing) {
      return;
    }
    s.probing = true;
    const Provider& p = *s.p;
    tier::uv::HttpRequest req;
    req.method = p.method;
    req.url = p.url;
    req.headers = p.headers;
    req.body = p.body;
    req.timeout = p.timeout;
    const auto started = std::chrono::steady_clock::now();
    ctx_.http().request(std::move(req), [this, alive = alive_, sp = &s,
                                         started](tier::Result<tier::uv::HttpResponse> r) {
      if (!*alive) {
        return;
      }
      sp->probing = false;
      const auto took = std::chrono::duration_cast<ms>(std::chrono::steady_clock::now() - started);
      on_result(*sp, std::move(r), took);
    });
  }

  void on_result(State& s, tier::Result<tier::uv::HttpResponse> r, ms took) {
    const Provider& p = *s.p;
    bool ok = false;
    std::string error;
    if (!r.ok()) {
      error = r.error().message;
    } else if (p.expect_status.empty() ? (r->status >= 200 && r->status < 300)
                                       : std::find(p.expect_status.begin(), p.expect_status.end(),
                                                   r->status) != p.expect_status.end()) {
      ok = true;
    } else {
      error = "HTTP " + std::to_string(r->status);
    }
    const bool slow = ok && p.degraded_latency.count() > 0 && took > p.degraded_latency;
    latency_.with({{"provider", p.name}}).observe(static_cast<double>(took.count()) / 1000.0);
    probes_.with({{"provider", p.name},
                  {"outcome", !ok    ? "failure"
                              : slow ? "degraded"
                                     : "ok"}})
        .inc();
    if (ok) {
      ++s.successes;
      s.failures = 0;
    } else {
      ++s.failures;
      s.successes = 0;
    }
    // Hysteresis: a verdict changes only after enough results in a row.
    std::string next = s.status;
    if (ok && s.successes >= p.healthy_after) {
      next = slow ? "degraded" : "healthy";
    } else if (!ok && s.failures >= p.unhealthy_after) {
      next = "unhealthy";
    }
    const std::int64_t checked_at = now_ms();
    Json status{{"status", next},
                {"latency_ms", took.count()},
                {"checked_at", checked_at},
                {"consecutive_failures", s.failures},
                {"last_error", error.empty() ? Json(nullptr) : Json(error)}};
    // A TTL of a few intervals: a dead prober shows as missing, not stale-healthy.
    const auto ttl = std::chrono::seconds(std::max<std::int64_t>(5, p.interval.count() * 3));
    ctx_.redis().run(status_keys_.set_health(p.name, status, ttl), [](tier::Result<tier::Unit>) {});
    if (r.ok()) {
      Json limits = Json::object();
      for (const auto& [name, value] : r->headers) {
        if (name == "x-ratelimit-remaining" || name == "x-ratelimit-reset" ||
            name == "retry-after" || name == "x-ratelimit-limit") {
          limits[name] = value;
        }
      }
      if (!limits.empty()) {
        limits["checked_at"] = checked_at;
        ctx_.redis().run(status_keys_.set_rate_limit_status(p.name, limits, ttl),
                         [](tier::Result<tier::Unit>) {});
      }
    }
    if (next != "unknown") {
      up_.with({{"provider", p.name}}).set(next == "unhealthy" ? 0 : 1);
    }
    if (next != s.status) {
      const std::string from = s.status;
      s.status = next;
      ctx_.log().info("provider_health {}: {} {} -> {}{}", ctx_.handler_name(), p.name, from, next,
                      error.empty() ? "" : " (" + tier::excerpt(error, 120) + ")");
      Json event{{"id", "provider:" + p.name + ":" + std::to_string(checked_at)},
                 {"provider", p.name},
                 {"from", from},
                 {"to", next},
                 {"latency_ms", took.count()},
                 {"error", error.empty() ? Json(nullptr) : Json(error)},
                 {"checked_at", checked_at}};
      ctx_.redis().run(tier::publish("events:provider_health_changed", event),
                       [](tier::Result<long long>) {});
    }
  }

  Context& ctx_;
  Settings settings_;
  tier::Cache cache_;
  tier::Providers status_keys_;
  tier::metrics::Family<tier::metrics::Counter>& probes_;
  tier::metrics::Family<tier::metrics::Histogram>& latency_;
  tier::metrics::Family<tier::metrics::Gauge>& up_;
  tier::metrics::Family<tier::metrics::Gauge>& leader_;
  std::vector<State> states_;
  LeadershipHandle campaign_;
  bool leading_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace

Factory provider_health_factory() {
  return [](const YAML::Node& section, const std::string& path, const HostInfo& host) -> Builder {
    Settings settings = parse_settings(section, path, host);
    return [settings](Context& ctx) -> std::unique_ptr<Handler> {
      return std::make_unique<ProviderHealth>(ctx, settings);
    };
  };
}

}  // namespace tierd
