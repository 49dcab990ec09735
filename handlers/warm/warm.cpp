#include "handlers/warm/warm.hpp"

#include <spdlog/logger.h>

#include <algorithm>
#include <deque>
#include <map>
#include <set>

#include "config/yaml.hpp"
#include "handlers/key_template.hpp"
#include "tier/backoff.hpp"
#include "tier/cache.hpp"
#include "tier/glob.hpp"
#include "tier/keys.hpp"
#include "tier/metrics.hpp"
#include "tier/pg/conn.hpp"
#include "tier/uv/async_client.hpp"

namespace tierd {

namespace {

using Json = nlohmann::json;
using ms = std::chrono::milliseconds;

constexpr const char* kWarmChannel = "system:cache_warm";

struct Warmer {
  std::string name;
  std::string query;
  /// The query as sent: to_jsonb gives every row as typed JSON (numbers stay numbers, json
  /// columns nest).
  std::string sql;
  std::vector<std::string> params;
  std::vector<KeyPiece> key;
  std::chrono::seconds ttl{3600};
  std::string tier = "custom";  ///< the tier whose TTL it uses, for the cache metrics
  enum class Shape { row, rows, per_row } shape = Shape::row;
  bool delete_on_empty = true;
  std::vector<std::string> on;
  bool at_start = false;
  std::chrono::seconds interval{0};
};

struct Settings {
  std::vector<Warmer> warmers;
  ms query_timeout{10000};
  std::size_t max_queries = 4;
  std::size_t queue = 1000;
  int max_attempts = 3;
  ms retry_backoff{500};
};

Settings parse_settings(const YAML::Node& section, const std::string& path, const HostInfo& host) {
  std::vector<std::string> keys = common_handler_keys();
  for (const char* k :
       {"warmers", "query_timeout_ms", "max_queries", "queue", "run_attempts", "run_backoff_ms"}) {
    keys.emplace_back(k);
  }
  yaml::Map m(section, path, keys);
  if (!host.postgres) {
    yaml::fail(section, path,
               "the warm handler reads PostgreSQL: set TIERD_POSTGRES_URL (or postgres.conninfo)");
  }
  Settings s;
  s.query_timeout = ms(m.integer("query_timeout_ms", 10000, 1, 3600000));
  s.max_queries = static_cast<std::size_t>(m.integer("max_queries", 4, 1, 1000));
  s.queue = static_cast<std::size_t>(m.integer("queue", 1000, 1, 1000000));
  s.max_attempts = static_cast<int>(m.integer("run_attempts", 3, 1, 100));
  s.retry_backoff = ms(m.integer("run_backoff_ms", 500, 1, 3600000));
  const YAML::Node list = m.get("warmers");
  const std::string lp = m.path_of("warmers");
  if (!list || !list.IsSequence() || list.size() == 0) {
    yaml::fail(list ? list : section, lp, "expected a non-empty list of warmers");
  }
  std::set<std::string> names;
  for (std::size_t i = 0; i < list.size(); ++i) {
    const std::string p = lp + "[" + std::to_string(i) + "]";
    yaml::Map w(list[i], p,
                {"name", "query", "params", "key", "tier", "ttl_s", "shape", "on_empty", "on",
                 "at_start", "interval_s"});
    Warmer c;
    c.name = w.required_string("name");
    if (auto bad = tier::check_id(c.name, "warmer name")) {
      yaml::fail(w.get("name"), w.path_of("name"), bad->message);
    }
    if (!names.insert(c.name).second) {
      yaml::fail(w.get("name"), w.path_of("name"), "warmer '" + c.name + "' is configured twice");
    }
    c.query = w.required_string("query");
    c.sql = "SELECT to_jsonb(q)::text FROM (" + c.query + ") AS q";
    c.params = w.strings("params", {});
    c.key =
        parse_key_template(w.required_string("key"), w.path_of("key"), yaml::line_of(w.get("key")));
    const std::string shape = w.string("shape", "row");
    if (shape == "row") {
      c.shape = Warmer::Shape::row;
    } else if (shape == "rows") {
      c.shape = Warmer::Shape::rows;
    } else if (shape == "per_row") {
      c.shape = Warmer::Shape::per_row;
    } else {
      yaml::fail(w.get("shape"), w.path_of("shape"), "expected row, rows or per_row");
    }
    for (const auto& piece : c.key) {
      // A row-shaped key is filled from the row's columns; the others from the message.
      const bool known = c.shape == Warmer::Shape::per_row ||
                         std::find(c.params.begin(), c.params.end(), piece.text) != c.params.end();
      if (piece.field && !known) {
        yaml::fail(w.get("key"), w.path_of("key"),
                   "placeholder {" + piece.text + "} is not one of the warmer's params");
      }
    }
    const std::string on_empty = w.string("on_empty", "delete");
    if (on_empty != "delete" && on_empty != "keep") {
      yaml::fail(w.get("on_empty"), w.path_of("on_empty"), "expected delete or keep");
    }
    c.delete_on_empty = on_empty == "delete";
    if (w.has("tier") && w.has("ttl_s")) {
      yaml::fail(w.get("ttl_s"), w.path_of("ttl_s"), "give tier or ttl_s, not both");
    }
    if (w.has("tier")) {
      auto t = tier::parse_tier(w.string("tier", ""));
      if (!t) {
        yaml::fail(w.get("tier"), w.path_of("tier"), "expected session, project or global");
      }
      c.ttl = tier::Cache().default_ttl(*t);
      c.tier = tier::to_string(*t);
    } else {
      c.ttl = std::chrono::seconds(w.integer("ttl_s", 3600, 1, 30LL * 86400));
    }
    c.on = w.strings("on", {});
    c.at_start = w.boolean("at_start", false);
    c.interval = std::chrono::seconds(w.integer("interval_s", 0, 0, 7 * 86400));
    if ((c.at_start || c.interval.count() > 0) && !c.params.empty()) {
      yaml::fail(w.get("params"), w.path_of("params"),
                 "a warmer run at start or on an interval has no message to take params from");
    }
    s.warmers.push_back(std::move(c));
  }
  return s;
}

/// A message field as a query parameter or key part: a string or a number; for a key, no
/// control or glob characters.
std::optional<std::string> field_text(const Json& body, const std::string& name, bool for_key,
                                      std::string& why) {
  if (!body.is_object() || !body.contains(name)) {
    why = "missing field '" + name + "'";
    return std::nullopt;
  }
  const Json& v = body[name];
  std::string text;
  if (v.is_string()) {
    text = v.get<std::string>();
  } else if (v.is_number_integer() || v.is_number_unsigned() || v.is_number_float()) {
    text = v.dump();
  } else {
    why = "field '" + name + "' must be a string or a number, not " + v.type_name();
    return std::nullopt;
  }
  if (auto bad = tier::check_id(text, name)) {
    why = bad->message;
    return std::nullopt;
  }
  if (for_key && text.find_first_of("*?[]\\") != std::string::npos) {
    why = "field '" + name + "' contains glob characters";
    return std::nullopt;
  }
  return text;
}

class WarmHandler final : public Handler {
 public:
  WarmHandler(Context& ctx, Settings s)
      : ctx_(ctx),
        settings_(std::move(s)),
        runs_(ctx.metrics().counter("tierd_warm_runs_total",
                                    "Warmer runs by warmer and result (ok, empty, retry, error, "
                                    "rejected, dropped)")),
        keys_(ctx.metrics().counter("tierd_warm_keys_total", "Keys written by warmers")),
        cache_(ctx.metrics().counter(
            "tierd_cache_events_total",
            "Cache loads and load failures by tier (tierd fills keys through warmers)")) {}

  ~WarmHandler() override { *alive_ = false; }

  void start() override {
    for (const auto& w : settings_.warmers) {
      if (w.at_start) {
        submit(w, Json::object(), nullptr);
      }
      if (w.interval.count() > 0) {
        timers_.push_back(ctx_.start_timer(w.interval, w.interval,
                                           [this, &w] { submit(w, Json::object(), nullptr); }));
      }
    }
  }

  void handle(std::shared_ptr<const Event> event, Done done) override {
    if (event->channel == kWarmChannel) {
      const Json& body = event->body;
      if (!body.contains("warmer") || !body["warmer"].is_string()) {
        reject("-", "system:cache_warm needs {\"warmer\": name}");
        done(HandlerResult::fail("\"warmer\" must name a warmer"));
        return;
      }
      const std::string name = body["warmer"].get<std::string>();
      const Warmer* w = find(name);
      if (w == nullptr) {
        reject("-", "unknown warmer '" + tier::excerpt(name, 64) + "'");
        done(HandlerResult::fail("unknown warmer '" + tier::excerpt(name, 64) + "'"));
        return;
      }
      const Json params = body.contains("params") ? body["params"] : Json::object();
      if (!params.is_object()) {
        reject(w->name, "\"params\" must be an object");
        done(HandlerResult::fail("\"params\" must be an object"));
        return;
      }
      submit(*w, params, std::move(done));
      return;
    }
    std::vector<const Warmer*> matched;
    for (const auto& w : settings_.warmers) {
      for (const auto& g : w.on) {
        if (tier::glob_match(g, event->channel)) {
          matched.push_back(&w);
          break;
        }
      }
    }
    if (matched.empty()) {
      done(HandlerResult::ok());
      return;
    }
    // The event is done when every matched warmer is; the worst result wins.
    auto left = std::make_shared<std::size_t>(matched.size());
    auto worst = std::make_shared<HandlerResult>(HandlerResult::ok());
    auto shared_done = std::make_shared<Done>(std::move(done));
    for (const Warmer* w : matched) {
      submit(*w, event->body, [left, worst, shared_done](HandlerResult r) {
        if (static_cast<int>(r.kind) > static_cast<int>(worst->kind)) {
          *worst = r;
        }
        if (--*left == 0) {
          (*shared_done)(*worst);
        }
      });
    }
  }

  void stop(std::function<void()> drained) override {
    timers_.clear();
    stopping_ = true;
    drained_ = std::move(drained);
    queue_.clear();
    check_drained();
  }

 private:
  struct Run {
    const Warmer* warmer;
    Json body;
    Done done;  // may be empty (start, interval)
    int attempt = 0;
    std::vector<std::optional<std::string>> params;  ///< $1..$n, checked when submitted
  };

  const Warmer* find(const std::string& name) const {
    for (const auto& w : settings_.warmers) {
      if (w.name == name) {
        return &w;
      }
    }
    return nullptr;
  }

  void count(const Warmer& w, const char* result) {
    runs_.with({{"handler", ctx_.handler_name()}, {"warmer", w.name}, {"result", result}}).inc();
  }

  void reject(const std::string& warmer, const std::string& why) {
    runs_.with({{"handler", ctx_.handler_name()}, {"warmer", warmer}, {"result", "rejected"}})
        .inc();
    ctx_.log().warn("warm {}: warmer {}: {}", ctx_.handler_name(), warmer, tier::excerpt(why, 200));
  }

  void submit(const Warmer& w, Json body, Done done) {
    if (stopping_) {
      if (done) {
        done(HandlerResult::retry("stopping"));
      }
      return;
    }
    // Parameters are checked before anything runs: bad input is refused, not retried.
    std::string why;
    std::vector<std::optional<std::string>> params;
    for (const auto& p : w.params) {
      params.push_back(field_text(body, p, false, why));
      if (!params.back()) {
        reject(w.name, why);
        if (done) {
          done(HandlerResult::fail("warmer " + w.name + ": " + why));
        }
        return;
      }
    }
    if (queue_.size() >= settings_.queue) {
      count(w, "dropped");
      if (done) {
        done(HandlerResult::retry("warm queue full"));
      }
      return;
    }
    queue_.push_back(Run{&w, std::move(body), std::move(done), 0, std::move(params)});
    pump();
  }

  void pump() {
    while (!stopping_ && running_ < settings_.max_queries && !queue_.empty()) {
      Run run = std::move(queue_.front());
      queue_.pop_front();
      execute(std::move(run));
    }
    check_drained();
  }

  void execute(Run run) {
    const Warmer& w = *run.warmer;
    ++running_;
    // A copy: a retry runs the same parameters again.
    auto params = run.params;
    ctx_.postgres()->query(
        w.sql, std::move(params),
        [this, alive = alive_, run = std::move(run)](tier::Result<tier::PgResult> r) mutable {
          if (!*alive) {
            return;
          }
          --running_;
          on_rows(std::move(run), std::move(r));
          pump();
        },
        settings_.query_timeout);
  }

  void on_rows(Run run, tier::Result<tier::PgResult> r) {
    const Warmer& w = *run.warmer;
    if (!r.ok()) {
      const tier::Error& e = r.error();
      if (e.transient() && run.attempt + 1 < settings_.max_attempts && !stopping_) {
        count(w, "retry");
        const ms delay = tier::backoff_delay(settings_.retry_backoff, settings_.retry_backoff * 32,
                                             run.attempt++);
        ctx_.log().debug("warm {}: warmer {} failed ({}); again in {} ms", ctx_.handler_name(),
                         w.name, e.message, delay.count());
        auto holder = std::make_shared<Run>(std::move(run));
        const std::uint64_t id = next_timer_++;
        retry_timers_[id] = ctx_.start_timer(delay, ms(0), [this, holder, id] {
          queue_.push_front(std::move(*holder));
          retry_timers_.erase(id);  // this timer, from its own callback: safe
          pump();
        });
        return;
      }
      count(w, "error");
      cache_.with({{"tier", w.tier}, {"event", "load_failure"}}).inc();
      // Once when the warmer starts failing; tierd_warm_runs_total counts each run.
      if (failing_.insert(w.name).second) {
        ctx_.log().warn("warm {}: warmer {} is failing: {}", ctx_.handler_name(), w.name,
                        tier::excerpt(e.message, 300));
      }
      finish(run, e.transient() ? HandlerResult::retry(e.message) : HandlerResult::fail(e.message));
      return;
    }
    std::vector<Json> rows;
    for (const auto& row : r->rows) {
      if (!row.empty() && row[0]) {
        rows.push_back(Json::parse(*row[0], nullptr, false));
      }
    }
    std::vector<tier::Command> cmds;
    std::string why;
    const std::string ttl = std::to_string(w.ttl.count());
    auto key_of = [&](const Json& fields) -> std::optional<std::string> {
      std::string key = ctx_.key_prefix();
      for (const auto& piece : w.key) {
        if (!piece.field) {
          key += piece.text;
          continue;
        }
        auto v = field_text(fields, piece.text, true, why);
        if (!v) {
          return std::nullopt;
        }
        key += *v;
      }
      return key;
    };
    if (w.shape == Warmer::Shape::per_row) {
      for (const auto& row : rows) {
        auto key = key_of(row);
        if (!key) {
          count(w, "rejected");
          ctx_.log().warn("warm {}: warmer {}: a row's key: {}", ctx_.handler_name(), w.name, why);
          continue;
        }
        cmds.push_back(tier::Command::of({"SET", *key, row.dump(), "EX", ttl}));
      }
    } else {
      auto key = key_of(run.body);
      if (!key) {
        reject(w.name, why);
        finish(run, HandlerResult::fail("warmer " + w.name + ": " + why));
        return;
      }
      if (rows.empty()) {
        if (w.delete_on_empty) {
          cmds.push_back(tier::Command::of({"UNLINK", *key}));
        }
      } else {
        const Json value = w.shape == Warmer::Shape::row ? rows.front() : Json(rows);
        cmds.push_back(tier::Command::of({"SET", *key, value.dump(), "EX", ttl}));
      }
    }
    if (cmds.empty()) {
      count(w, "empty");
      finish(run, HandlerResult::ok());
      return;
    }
    const std::size_t written = rows.empty() ? 0 : cmds.size();
    auto holder = std::make_shared<Run>(std::move(run));
    ++running_;
    ctx_.redis().exec(
        std::move(cmds), ms(0),
        [this, alive = alive_, holder, written](tier::Result<std::vector<tier::Reply>> r) {
          if (!*alive) {
            return;
          }
          --running_;
          const Warmer& w = *holder->warmer;
          if (!r.ok()) {
            count(w, "error");
            cache_.with({{"tier", w.tier}, {"event", "load_failure"}}).inc();
            finish(*holder, HandlerResult::retry(r.error().describe()));
          } else {
            count(w, written == 0 ? "empty" : "ok");
            if (failing_.erase(w.name) != 0) {
              ctx_.log().info("warm {}: warmer {} works again", ctx_.handler_name(), w.name);
            }
            keys_.with({{"handler", ctx_.handler_name()}, {"warmer", w.name}})
                .inc(static_cast<double>(written));
            cache_.with({{"tier", w.tier}, {"event", "load"}}).inc(static_cast<double>(written));
            finish(*holder, HandlerResult::ok());
          }
          pump();
        });
  }

  void finish(Run& run, HandlerResult r) {
    if (run.done) {
      auto d = std::move(run.done);
      run.done = nullptr;
      d(std::move(r));
    }
  }

  void check_drained() {
    if (stopping_ && running_ == 0 && drained_) {
      auto d = std::move(drained_);
      drained_ = nullptr;
      *alive_ = false;
      retry_timers_.clear();
      d();
    }
  }

  Context& ctx_;
  Settings settings_;
  tier::metrics::Family<tier::metrics::Counter>& runs_;
  tier::metrics::Family<tier::metrics::Counter>& keys_;
  tier::metrics::Family<tier::metrics::Counter>& cache_;
  std::deque<Run> queue_;
  std::size_t running_ = 0;
  std::vector<TimerHandle> timers_;
  std::map<std::uint64_t, TimerHandle> retry_timers_;
  std::uint64_t next_timer_ = 0;
  std::set<std::string> failing_;  ///< warmers whose last run failed (logged once)
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  bool stopping_ = false;
  std::function<void()> drained_;
};

}  // namespace

Factory warm_factory() {
  return [](const YAML::Node& section, const std::string& path, const HostInfo& host) -> Builder {
    Settings settings = parse_settings(section, path, host);
    return [settings](Context& ctx) -> std::unique_ptr<Handler> {
      return std::make_unique<WarmHandler>(ctx, settings);
    };
  };
}

}  // namespace tierd
