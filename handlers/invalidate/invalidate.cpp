#include "handlers/invalidate/invalidate.hpp"

#include <spdlog/logger.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <regex>

#include "config/glob.hpp"
#include "config/yaml.hpp"
#include "tier/async_client.hpp"
#include "tier/keys.hpp"
#include "tier/metrics.hpp"
#include "tier/scan_delete.hpp"

namespace tierd {

namespace {

constexpr const char* kInvalidationChannel = "system:cache_invalidation";

/// One piece of a key template: literal text, or a {field} placeholder.
struct Piece {
  bool field = false;
  std::string text;
};

struct Rule {
  std::string on;  ///< channel glob
  std::vector<std::vector<Piece>> templates;
};

struct Settings {
  std::uint32_t scan_batch = 1000;
  std::size_t unlink_batch = 500;
  std::size_t max_pattern_jobs = 4;
  std::size_t max_items = 1000;
  std::vector<Rule> rules;
};

bool has_glob(std::string_view s) {
  return s.find_first_of("*?[]\\") != std::string_view::npos;
}

std::vector<Piece> parse_template(const std::string& t, const std::string& path, int line) {
  std::vector<Piece> out;
  std::size_t i = 0;
  while (i < t.size()) {
    const auto open = t.find('{', i);
    const auto stray = t.find('}', i);
    if (stray < open) {
      throw ConfigError(path, line, "unbalanced '}' in key template '" + t + "'");
    }
    if (open == std::string::npos) {
      out.push_back({false, t.substr(i)});
      break;
    }
    if (open > i) {
      out.push_back({false, t.substr(i, open - i)});
    }
    const auto close = t.find('}', open);
    if (close == std::string::npos) {
      throw ConfigError(path, line, "unclosed '{' in key template '" + t + "'");
    }
    const std::string name = t.substr(open + 1, close - open - 1);
    if (name.empty() ||
        name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                               "0123456789_") != std::string::npos) {
      throw ConfigError(
          path, line, "placeholder {" + name + "} must name a message field (letters, digits, _)");
    }
    out.push_back({true, name});
    i = close + 1;
  }
  if (out.empty() || out.front().field || has_glob(out.front().text.substr(0, 1))) {
    throw ConfigError(path, line,
                      "key template '" + t +
                          "' must start with a literal key prefix (e.g. "
                          "'project:{project_id}:...')");
  }
  return out;
}

/// Patterns from messages must start with a literal prefix that ends in ':', so a message
/// can never ask for "*" (every key of the database).
bool safe_pattern(std::string_view p) {
  const auto glob = p.find_first_of("*?[\\");
  const auto colon = p.find(':');
  return colon != std::string_view::npos && colon > 0 && colon < glob;
}

Settings parse_settings(const YAML::Node& section, const std::string& path) {
  std::vector<std::string> keys = common_handler_keys();
  for (const char* k : {"scan_batch", "unlink_batch", "max_pattern_jobs", "max_items", "rules"}) {
    keys.emplace_back(k);
  }
  yaml::Map m(section, path, keys);
  Settings s;
  s.scan_batch = static_cast<std::uint32_t>(m.integer("scan_batch", 1000, 1, 100000));
  s.unlink_batch = static_cast<std::size_t>(m.integer("unlink_batch", 500, 1, 100000));
  s.max_pattern_jobs = static_cast<std::size_t>(m.integer("max_pattern_jobs", 4, 1, 1000));
  s.max_items = static_cast<std::size_t>(m.integer("max_items", 1000, 1, 1000000));
  if (m.has("rules")) {
    const YAML::Node rules = m.get("rules");
    const std::string rp = m.path_of("rules");
    if (!rules.IsSequence()) {
      yaml::fail(rules, rp, "expected a list of {on, invalidate} rules");
    }
    for (std::size_t i = 0; i < rules.size(); ++i) {
      const std::string p = rp + "[" + std::to_string(i) + "]";
      yaml::Map r(rules[i], p, {"on", "invalidate"});
      Rule rule;
      rule.on = r.required_string("on");
      if (auto e = tier::check_id(rule.on, "rule channel")) {
        yaml::fail(r.get("on"), r.path_of("on"), e->message);
      }
      if (!r.has("invalidate")) {
        yaml::fail(rules[i], r.path_of("invalidate"), "required key is missing");
      }
      const auto templates = r.strings("invalidate", {});
      if (templates.empty()) {
        yaml::fail(r.get("invalidate"), r.path_of("invalidate"), "needs at least one key template");
      }
      for (std::size_t j = 0; j < templates.size(); ++j) {
        const std::string tp = r.path_of("invalidate") + "[" + std::to_string(j) + "]";
        const int line = yaml::line_of(r.get("invalidate")[j]);
        if (auto e = tier::check_id(templates[j], "key template")) {
          throw ConfigError(tp, line, e->message);
        }
        rule.templates.push_back(parse_template(templates[j], tp, line));
      }
      s.rules.push_back(std::move(rule));
    }
  }
  return s;
}

class Invalidate final : public Handler {
 public:
  Invalidate(Context& ctx, Settings settings)
      : state_(std::make_shared<State>(ctx, std::move(settings))) {}

  ~Invalidate() override {
    // Work still in flight (the daemon gave up waiting) must not touch the context or the
    // core's callbacks any more: its callbacks see `alive == false` and only unwind.
    state_->alive = false;
    state_->cancel->store(true);
    // Jobs that never started hold the state; dropping them breaks that cycle.
    state_->waiting_patterns.clear();
  }

  void handle(std::shared_ptr<const Event> event, Done done) override;

  void stop(std::function<void()> drained) override {
    state_->stopping = true;
    if (state_->active == 0) {
      drained();
    } else {
      state_->drained = std::move(drained);
    }
  }

 private:
  struct Job;

  struct State {
    State(Context& c, Settings s)
        : ctx(c),
          settings(std::move(s)),
          labels{{"handler", c.handler_name()}},
          deleted_keys(
              c.metrics()
                  .counter("tierd_invalidate_keys_deleted_total",
                           "Keys deleted by the invalidate handler, by how they were named")
                  .with({{"handler", c.handler_name()}, {"kind", "key"}})),
          deleted_by_pattern(c.metrics()
                                 .counter("tierd_invalidate_keys_deleted_total", "")
                                 .with({{"handler", c.handler_name()}, {"kind", "pattern"}})),
          jobs_ok(c.metrics()
                      .counter("tierd_invalidate_jobs_total",
                               "Invalidation jobs (one UNLINK batch set or one pattern scan)")
                      .with({{"handler", c.handler_name()}, {"result", "ok"}})),
          jobs_failed(c.metrics()
                          .counter("tierd_invalidate_jobs_total", "")
                          .with({{"handler", c.handler_name()}, {"result", "error"}})),
          job_seconds(c.metrics()
                          .histogram("tierd_invalidate_job_duration_seconds",
                                     "Time a pattern deletion took, from start to last step")
                          .with({{"handler", c.handler_name()}})),
          pattern_jobs(c.metrics()
                           .gauge("tierd_invalidate_pattern_jobs",
                                  "Pattern deletions running or waiting for a slot")
                           .with({{"handler", c.handler_name()}, {"state", "running"}})),
          pattern_waiting(c.metrics()
                              .gauge("tierd_invalidate_pattern_jobs", "")
                              .with({{"handler", c.handler_name()}, {"state", "waiting"}})) {}

    Context& ctx;
    Settings settings;
    tier::metrics::Labels labels;
    tier::metrics::Counter& deleted_keys;
    tier::metrics::Counter& deleted_by_pattern;
    tier::metrics::Counter& jobs_ok;
    tier::metrics::Counter& jobs_failed;
    tier::metrics::Histogram& job_seconds;
    tier::metrics::Gauge& pattern_jobs;
    tier::metrics::Gauge& pattern_waiting;

    bool alive = true;
    bool stopping = false;
    std::size_t active = 0;  ///< events not yet answered
    std::function<void()> drained;
    std::shared_ptr<std::atomic<bool>> cancel = std::make_shared<std::atomic<bool>>(false);
    std::size_t running_patterns = 0;
    std::deque<std::function<void()>> waiting_patterns;

    void rejected(const std::string& reason) {
      ctx.metrics()
          .counter("tierd_invalidate_rejected_total",
                   "Messages the invalidate handler refused (bad or hostile content)")
          .with({{"handler", ctx.handler_name()}, {"reason", reason}})
          .inc();
    }
    void finished_one() {
      --active;
      if (stopping && active == 0 && drained) {
        auto d = std::move(drained);
        drained = nullptr;
        d();
      }
    }
    void start_next_pattern() {
      while (running_patterns < settings.max_pattern_jobs && !waiting_patterns.empty()) {
        auto job = std::move(waiting_patterns.front());
        waiting_patterns.pop_front();
        ++running_patterns;
        job();
      }
      pattern_jobs.set(static_cast<double>(running_patterns));
      pattern_waiting.set(static_cast<double>(waiting_patterns.size()));
    }
  };

  /// What one event asks for, collected before anything is deleted.
  struct Plan {
    std::vector<std::string> keys;
    std::vector<std::string> patterns;
  };

  /// Builds the plan or returns the rejection reason (and a detail for the log).
  std::optional<std::pair<std::string, std::string>> plan(const Event& e, Plan& out) const;

  std::shared_ptr<State> state_;
};

std::optional<std::pair<std::string, std::string>> Invalidate::plan(const Event& e,
                                                                    Plan& out) const {
  using Reason = std::pair<std::string, std::string>;
  const Settings& s = state_->settings;
  const std::string& prefix = state_->ctx.key_prefix();
  const nlohmann::json& body = e.body;

  auto check_field = [](const nlohmann::json& v, const std::string& name,
                        bool allow_glob) -> std::optional<Reason> {
    if (!v.is_string()) {
      return Reason{"wrong_type", name + " must be a string"};
    }
    const auto& str = v.get_ref<const std::string&>();
    if (auto err = tier::check_id(str, name)) {
      return Reason{"bad_value", err->message};
    }
    if (!allow_glob && has_glob(str)) {
      return Reason{"bad_value", name + " contains glob characters"};
    }
    return std::nullopt;
  };

  if (e.channel == kInvalidationChannel) {
    bool any = false;
    if (body.contains("keys")) {
      any = true;
      const auto& keys = body["keys"];
      if (!keys.is_array()) {
        return Reason{"wrong_type", "keys must be an array of strings"};
      }
      for (const auto& k : keys) {
        // Exact keys are sent as UNLINK arguments, not patterns: glob characters are literal.
        if (auto r = check_field(k, "keys[]", true)) {
          return r;
        }
        out.keys.push_back(prefix + k.get<std::string>());
      }
    }
    if (body.contains("patterns")) {
      any = true;
      const auto& pats = body["patterns"];
      if (!pats.is_array()) {
        return Reason{"wrong_type", "patterns must be an array of strings"};
      }
      for (const auto& p : pats) {
        if (auto r = check_field(p, "patterns[]", true)) {
          return r;
        }
        const auto& str = p.get_ref<const std::string&>();
        if (!safe_pattern(str)) {
          return Reason{"unsafe_pattern",
                        "a pattern must start with a literal prefix ending in ':' (e.g. "
                        "'project:42:*')"};
        }
        out.patterns.push_back(tier::glob_escape(prefix) + str);
      }
    }
    // Ids are escaped, not refused, where they go into a pattern (DESIGN §4).
    for (const char* id_field : {"session_id", "project_id"}) {
      if (!body.contains(id_field)) {
        continue;
      }
      any = true;
      if (auto r = check_field(body[id_field], id_field, true)) {
        return r;
      }
      const std::string scope = std::string(id_field) == "session_id" ? "session:" : "project:";
      out.patterns.push_back(tier::glob_escape(prefix) + scope +
                             tier::glob_escape(body[id_field].get<std::string>()) + ":*");
    }
    if (!any && s.rules.empty()) {
      return Reason{"empty", "no keys, patterns, session_id or project_id"};
    }
    if (!any) {
      bool rule_matches = false;
      for (const auto& rule : s.rules) {
        rule_matches = rule_matches || glob_match(rule.on, e.channel);
      }
      if (!rule_matches) {
        return Reason{"empty", "no keys, patterns, session_id or project_id"};
      }
    }
  }

  for (const auto& rule : s.rules) {
    if (!glob_match(rule.on, e.channel)) {
      continue;
    }
    for (const auto& tmpl : rule.templates) {
      std::string built;
      for (const auto& piece : tmpl) {
        if (!piece.field) {
          built += piece.text;
          continue;
        }
        if (!body.contains(piece.text)) {
          return Reason{"missing_field", "field '" + piece.text + "' is missing"};
        }
        // A rule's template decides what is a glob; a value never adds one.
        if (auto r = check_field(body[piece.text], piece.text, false)) {
          return r;
        }
        built += body[piece.text].get<std::string>();
      }
      if (has_glob(built)) {
        out.patterns.push_back(tier::glob_escape(prefix) + built);
      } else {
        out.keys.push_back(prefix + built);
      }
    }
  }

  if (out.keys.size() + out.patterns.size() > s.max_items) {
    return Reason{"too_many_items", "the message names more than max_items keys and patterns"};
  }
  if (out.keys.empty() && out.patterns.empty()) {
    return Reason{"empty", "nothing to invalidate"};
  }
  return std::nullopt;
}

void Invalidate::handle(std::shared_ptr<const Event> event, Done done) {
  auto st = state_;
  Plan p;
  if (auto why = plan(*event, p)) {
    st->rejected(why->first);
    done(HandlerResult::fail(why->first + ": " + why->second));
    return;
  }
  ++st->active;

  // Every part reports into one tally; the event is answered when the last part is done.
  struct Tally {
    std::size_t parts = 0;
    bool transient_error = false;
    std::string error;
    Done done;
  };
  auto tally = std::make_shared<Tally>();
  tally->done = std::move(done);
  tally->parts = (p.keys.empty() ? 0 : 1) + p.patterns.size();

  auto part_done = [st, tally](std::optional<tier::Error> err) {
    if (err) {
      const bool transient = err->kind == tier::ErrorKind::io ||
                             err->kind == tier::ErrorKind::timeout ||
                             err->kind == tier::ErrorKind::closed;
      tally->transient_error = tally->transient_error || transient;
      if (tally->error.empty()) {
        tally->error = err->describe();
      }
    }
    if (--tally->parts > 0) {
      return;
    }
    if (!st->alive) {
      return;
    }
    Done d = std::move(tally->done);
    if (tally->error.empty()) {
      d(HandlerResult::ok());
    } else if (tally->transient_error) {
      d(HandlerResult::retry(tally->error));
    } else {
      d(HandlerResult::fail(tally->error));
    }
    st->finished_one();
  };

  if (!p.keys.empty()) {
    std::vector<tier::Command> cmds;
    for (std::size_t i = 0; i < p.keys.size(); i += st->settings.unlink_batch) {
      std::vector<std::string> args{"UNLINK"};
      const std::size_t end = std::min(p.keys.size(), i + st->settings.unlink_batch);
      args.insert(args.end(), p.keys.begin() + static_cast<std::ptrdiff_t>(i),
                  p.keys.begin() + static_cast<std::ptrdiff_t>(end));
      cmds.push_back(tier::Command::of(std::move(args)));
    }
    // All batches go out in one write (pipelined); each UNLINK stays short.
    st->ctx.redis().exec(std::move(cmds), std::chrono::milliseconds(0),
                         [st, part_done](tier::Result<std::vector<tier::Reply>> r) {
                           if (!st->alive) {
                             part_done(std::nullopt);
                             return;
                           }
                           if (!r.ok()) {
                             st->jobs_failed.inc();
                             part_done(r.error());
                             return;
                           }
                           std::optional<tier::Error> err;
                           for (auto& reply : r.value()) {
                             auto n = tier::decode_integer(std::move(reply), "UNLINK");
                             if (n.ok()) {
                               st->deleted_keys.inc(static_cast<double>(*n));
                             } else if (!err) {
                               err = n.error();
                             }
                           }
                           (err ? st->jobs_failed : st->jobs_ok).inc();
                           part_done(err);
                         });
  }

  for (auto& pattern : p.patterns) {
    st->waiting_patterns.push_back([st, part_done, pattern = std::move(pattern)] {
      const auto started = std::chrono::steady_clock::now();
      tier::DeleteOptions opts;
      opts.batch = st->settings.scan_batch;
      opts.cancel = st->cancel;
      tier::delete_by_pattern(
          st->ctx.redis(), pattern, std::move(opts),
          [st, part_done, started](tier::Result<std::uint64_t> r) {
            if (!st->alive) {
              part_done(std::nullopt);
              return;
            }
            --st->running_patterns;
            st->job_seconds.observe(
                std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
            if (r.ok()) {
              st->deleted_by_pattern.inc(static_cast<double>(*r));
              st->jobs_ok.inc();
              part_done(std::nullopt);
            } else {
              st->jobs_failed.inc();
              part_done(r.error());
            }
            st->start_next_pattern();
          });
    });
  }
  st->start_next_pattern();
}

}  // namespace

Factory invalidate_factory() {
  return [](const YAML::Node& section, const std::string& path) -> Builder {
    Settings settings = parse_settings(section, path);
    return [settings](Context& ctx) -> std::unique_ptr<Handler> {
      return std::make_unique<Invalidate>(ctx, settings);
    };
  };
}

}  // namespace tierd
