#include "handlers/notify/notify.hpp"

#include <spdlog/logger.h>

#include <deque>
#include <set>

#include "config/yaml.hpp"
#include "handlers/http_headers.hpp"
#include "tier/backoff.hpp"
#include "tier/keys.hpp"
#include "tier/metrics.hpp"
#include "tier/uv/http_client.hpp"

namespace tierd {

namespace {

using ms = std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

struct SinkConfig {
  std::string name;
  std::string type;  // webhook | log
  std::string url;
  std::vector<std::string> headers;  // "Name: value", secrets expanded
  ms timeout{5000};
  int max_attempts = 5;
  ms backoff{500};
  double rate_per_s = 0;
  std::size_t queue = 1000;
  std::string level = "info";
};

struct Settings {
  std::vector<SinkConfig> sinks;
  ms stop_timeout{5000};
};

Settings parse_settings(const YAML::Node& section, const std::string& path, const EnvLookup& env) {
  std::vector<std::string> keys = common_handler_keys();
  keys.emplace_back("sinks");
  keys.emplace_back("stop_timeout_ms");
  yaml::Map m(section, path, keys);
  Settings s;
  s.stop_timeout = ms(m.integer("stop_timeout_ms", 5000, 1, 3600000));
  const YAML::Node sinks = m.get("sinks");
  const std::string sp = m.path_of("sinks");
  if (!sinks || !sinks.IsSequence() || sinks.size() == 0) {
    yaml::fail(sinks ? sinks : section, sp, "expected a non-empty list of sinks");
  }
  std::set<std::string> names;
  for (std::size_t i = 0; i < sinks.size(); ++i) {
    const std::string p = sp + "[" + std::to_string(i) + "]";
    yaml::Map k(sinks[i], p,
                {"name", "type", "url", "headers", "timeout_ms", "max_attempts", "retry_backoff_ms",
                 "rate_per_s", "queue", "level"});
    SinkConfig c;
    c.name = k.required_string("name");
    if (auto bad = tier::check_id(c.name, "sink name")) {
      yaml::fail(k.get("name"), k.path_of("name"), bad->message);
    }
    if (!names.insert(c.name).second) {
      yaml::fail(k.get("name"), k.path_of("name"), "sink '" + c.name + "' is configured twice");
    }
    c.type = k.required_string("type");
    if (c.type == "webhook") {
      c.url = k.required_string("url");
      if (!(c.url.starts_with("http://") || c.url.starts_with("https://")) ||
          c.url.find_first_of(" \t\r\n") != std::string::npos) {
        yaml::fail(k.get("url"), k.path_of("url"), "expected an http:// or https:// URL");
      }
      c.headers = http_headers(k.get("headers"), k.path_of("headers"), env);
      c.timeout = ms(k.integer("timeout_ms", 5000, 1, 600000));
      c.max_attempts = static_cast<int>(k.integer("max_attempts", 5, 1, 100));
      c.backoff = ms(k.integer("retry_backoff_ms", 500, 1, 3600000));
      c.rate_per_s = k.number("rate_per_s", 0, 0, 100000);
      c.queue = static_cast<std::size_t>(k.integer("queue", 1000, 1, 1000000));
    } else if (c.type == "log") {
      for (const char* only_webhook :
           {"url", "headers", "timeout_ms", "max_attempts", "retry_backoff_ms", "rate_per_s"}) {
        if (k.has(only_webhook)) {
          yaml::fail(k.get(only_webhook), k.path_of(only_webhook),
                     "only a webhook sink takes this key");
        }
      }
      c.level = k.string("level", "info");
      if (c.level != "info" && c.level != "warn" && c.level != "debug") {
        yaml::fail(k.get("level"), k.path_of("level"), "expected info, warn or debug");
      }
      c.queue = static_cast<std::size_t>(k.integer("queue", 1000, 1, 1000000));
    } else {
      yaml::fail(k.get("type"), k.path_of("type"),
                 "unknown sink type '" + tier::excerpt(c.type, 40) + "' (webhook or log)");
    }
    s.sinks.push_back(std::move(c));
  }
  return s;
}

class NotifyHandler final : public Handler {
 public:
  NotifyHandler(Context& ctx, Settings settings)
      : ctx_(ctx),
        settings_(std::move(settings)),
        outcomes_(ctx.metrics().counter("tierd_notify_deliveries_total",
                                        "Notification deliveries by sink and outcome (delivered, "
                                        "retried, failed, dropped)")),
        depth_(ctx.metrics().gauge("tierd_notify_queue_depth",
                                   "Notifications waiting or in flight, by sink")) {
    for (const auto& c : settings_.sinks) {
      auto s = std::make_unique<Sink>();
      s->cfg = c;
      const tier::metrics::Labels base{{"handler", ctx.handler_name()}, {"sink", c.name}};
      auto label = [&](const char* outcome) {
        auto l = base;
        l.emplace_back("outcome", outcome);
        return l;
      };
      s->delivered = &outcomes_.with(label("delivered"));
      s->retried = &outcomes_.with(label("retried"));
      s->failed = &outcomes_.with(label("failed"));
      s->dropped = &outcomes_.with(label("dropped"));
      s->depth = &depth_.with(base);
      sinks_.push_back(std::move(s));
    }
  }

  ~NotifyHandler() override {
    *alive_ = false;
    for (auto& s : sinks_) {
      s->depth->set(0);
    }
  }

  void handle(std::shared_ptr<const Event> event, Done done) override {
    if (stopping_) {
      done(HandlerResult::retry("stopping"));
      return;
    }
    const std::string body = event->body.dump();
    for (auto& s : sinks_) {
      if (s->queue.size() >= s->cfg.queue) {
        s->dropped->inc();
        if (!s->overflow_logged) {
          s->overflow_logged = true;
          ctx_.log().warn("notify {}: sink {} is full ({} waiting); dropping notifications",
                          ctx_.handler_name(), s->cfg.name, s->queue.size());
        }
        continue;
      }
      s->overflow_logged = false;
      s->queue.push_back(Item{event->channel, body, 0});
      s->depth->set(static_cast<double>(s->queue.size()));
      pump(*s);
    }
    done(HandlerResult::ok());
  }

  void stop(std::function<void()> drained) override {
    stopping_ = true;
    drained_ = std::move(drained);
    stop_timer_ = ctx_.start_timer(settings_.stop_timeout, ms(0), [this] {
      std::size_t left = 0;
      for (auto& s : sinks_) {
        left += s->queue.size();
      }
      ctx_.log().warn("notify {}: stop deadline passed; {} notification(s) not delivered",
                      ctx_.handler_name(), left);
      finish_stop();
    });
    check_drained();
  }

 private:
  struct Item {
    std::string channel;
    std::string body;
    int attempt = 0;
  };
  struct Sink {
    SinkConfig cfg;
    std::deque<Item> queue;
    bool sending = false;
    bool overflow_logged = false;
    bool failing = false;  ///< the last notification was given up
    Clock::time_point next_start{};
    TimerHandle timer;
    tier::metrics::Counter* delivered = nullptr;
    tier::metrics::Counter* retried = nullptr;
    tier::metrics::Counter* failed = nullptr;
    tier::metrics::Counter* dropped = nullptr;
    tier::metrics::Gauge* depth = nullptr;
  };

  void pump(Sink& s) {
    if (s.sending || s.timer || s.queue.empty() || finished_) {
      return;
    }
    if (s.cfg.type == "log") {
      while (!s.queue.empty()) {
        const Item& it = s.queue.front();
        const auto level = s.cfg.level == "warn"    ? spdlog::level::warn
                           : s.cfg.level == "debug" ? spdlog::level::debug
                                                    : spdlog::level::info;
        ctx_.log().log(level, "notify {} {}: {}", s.cfg.name, tier::excerpt(it.channel, 120),
                       tier::excerpt(it.body, 1000));
        s.delivered->inc();
        s.queue.pop_front();
      }
      s.depth->set(0);
      check_drained();
      return;
    }
    const auto now = Clock::now();
    if (now < s.next_start) {
      // Paced: come back when the next request may start.
      s.timer = ctx_.start_timer(std::chrono::ceil<ms>(s.next_start - now), ms(0), [this, &s] {
        s.timer.reset();
        pump(s);
      });
      return;
    }
    if (s.cfg.rate_per_s > 0) {
      s.next_start = now + std::chrono::duration_cast<Clock::duration>(
                               std::chrono::duration<double>(1.0 / s.cfg.rate_per_s));
    }
    s.sending = true;
    tier::uv::HttpRequest req;
    req.method = "POST";
    req.url = s.cfg.url;
    req.headers = s.cfg.headers;
    req.headers.emplace_back("Content-Type: application/json");
    req.body = s.queue.front().body;
    req.timeout = s.cfg.timeout;
    ctx_.http().request(std::move(req),
                        [this, &s, alive = alive_](tier::Result<tier::uv::HttpResponse> r) {
                          if (!*alive) {
                            return;
                          }
                          s.sending = false;
                          on_sent(s, std::move(r));
                        });
  }

  void on_sent(Sink& s, tier::Result<tier::uv::HttpResponse> r) {
    Item& it = s.queue.front();
    const bool delivered = r.ok() && r->status >= 200 && r->status < 300;
    // 5xx, timeouts and connection errors may pass later; any other status will not.
    const bool retryable =
        !delivered && (r.ok() ? r->status >= 500 : r.error().kind != tier::ErrorKind::invalid);
    const std::string why = r.ok() ? "HTTP " + std::to_string(r->status) : r.error().message;
    if (delivered) {
      s.delivered->inc();
      if (s.failing) {
        s.failing = false;
        ctx_.log().info("notify {}: sink {} delivers again", ctx_.handler_name(), s.cfg.name);
      }
    } else if (retryable && it.attempt + 1 < s.cfg.max_attempts && !finished_) {
      s.retried->inc();
      const ms delay = tier::backoff_delay(s.cfg.backoff, s.cfg.backoff * 64, it.attempt++);
      ctx_.log().debug("notify {}: sink {} attempt {} failed ({}); retrying in {} ms",
                       ctx_.handler_name(), s.cfg.name, it.attempt, why, delay.count());
      s.timer = ctx_.start_timer(delay, ms(0), [this, &s] {
        s.timer.reset();
        pump(s);
      });
      return;
    } else {
      s.failed->inc();
      // Once when the sink starts failing (tierd_notify_deliveries_total counts each one).
      if (!s.failing) {
        s.failing = true;
        ctx_.log().warn(
            "notify {}: sink {} is failing: gave up on a notification of {} after {} "
            "attempt(s): {}",
            ctx_.handler_name(), s.cfg.name, tier::excerpt(it.channel, 120), it.attempt + 1,
            tier::excerpt(why, 200));
      }
    }
    s.queue.pop_front();
    s.depth->set(static_cast<double>(s.queue.size()));
    check_drained();
    pump(s);
  }

  void check_drained() {
    if (!stopping_ || finished_) {
      return;
    }
    for (auto& s : sinks_) {
      if (!s->queue.empty() || s->sending) {
        return;
      }
    }
    finish_stop();
  }

  void finish_stop() {
    if (finished_) {
      return;
    }
    finished_ = true;
    *alive_ = false;
    stop_timer_.reset();
    for (auto& s : sinks_) {
      s->timer.reset();
    }
    if (drained_) {
      auto d = std::move(drained_);
      drained_ = nullptr;
      d();
    }
  }

  Context& ctx_;
  Settings settings_;
  tier::metrics::Family<tier::metrics::Counter>& outcomes_;
  tier::metrics::Family<tier::metrics::Gauge>& depth_;
  std::vector<std::unique_ptr<Sink>> sinks_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  bool stopping_ = false;
  bool finished_ = false;
  std::function<void()> drained_;
  TimerHandle stop_timer_;
};

}  // namespace

Factory notify_factory() {
  return [](const YAML::Node& section, const std::string& path, const HostInfo& host) -> Builder {
    Settings settings = parse_settings(section, path, host.env);
    return [settings](Context& ctx) -> std::unique_ptr<Handler> {
      return std::make_unique<NotifyHandler>(ctx, settings);
    };
  };
}

}  // namespace tierd
