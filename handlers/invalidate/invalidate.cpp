#include "handlers/invalidate/invalidate.hpp"

#include <spdlog/logger.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <regex>

#include "handlers/invalidate/plan.hpp"
#include "tier/keys.hpp"
#include "tier/metrics.hpp"
#include "tier/uv/async_client.hpp"
#include "tier/uv/scan_delete.hpp"

namespace tierd {

namespace {

class Invalidate final : public Handler {
 public:
  Invalidate(Context& ctx, invalidate::Settings settings)
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

  /// The handler's metrics, declared once (every instance shares the families).
  struct Families {
    explicit Families(tier::metrics::Registry& r)
        : deleted(r.counter("tierd_invalidate_keys_deleted_total",
                            "Keys deleted by the invalidate handler, by how they were named")),
          jobs(r.counter("tierd_invalidate_jobs_total",
                         "Invalidation jobs (one UNLINK batch set or one pattern scan)")),
          job_seconds(r.histogram("tierd_invalidate_job_duration_seconds",
                                  "Time a pattern deletion took, from start to last step")),
          pattern_jobs(r.gauge("tierd_invalidate_pattern_jobs",
                               "Pattern deletions running or waiting for a slot")),
          rejected(r.counter("tierd_invalidate_rejected_total",
                             "Messages the invalidate handler refused (bad or hostile content)")) {}
    tier::metrics::Family<tier::metrics::Counter>& deleted;
    tier::metrics::Family<tier::metrics::Counter>& jobs;
    tier::metrics::Family<tier::metrics::Histogram>& job_seconds;
    tier::metrics::Family<tier::metrics::Gauge>& pattern_jobs;
    tier::metrics::Family<tier::metrics::Counter>& rejected;
  };

  struct State {
    State(Context& c, invalidate::Settings s)
        : ctx(c),
          settings(std::move(s)),
          families(c.metrics()),
          deleted_keys(families.deleted.with({{"handler", c.handler_name()}, {"kind", "key"}})),
          deleted_by_pattern(
              families.deleted.with({{"handler", c.handler_name()}, {"kind", "pattern"}})),
          jobs_ok(families.jobs.with({{"handler", c.handler_name()}, {"result", "ok"}})),
          jobs_failed(families.jobs.with({{"handler", c.handler_name()}, {"result", "error"}})),
          job_seconds(families.job_seconds.with({{"handler", c.handler_name()}})),
          pattern_jobs(
              families.pattern_jobs.with({{"handler", c.handler_name()}, {"state", "running"}})),
          pattern_waiting(
              families.pattern_jobs.with({{"handler", c.handler_name()}, {"state", "waiting"}})) {}

    Context& ctx;
    invalidate::Settings settings;
    Families families;
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
      families.rejected.with({{"handler", ctx.handler_name()}, {"reason", reason}}).inc();
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

  std::shared_ptr<State> state_;
};

void Invalidate::handle(std::shared_ptr<const Event> event, Done done) {
  auto st = state_;
  invalidate::Plan p;
  if (auto why = invalidate::plan(st->settings, st->ctx.key_prefix(), *event, p)) {
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
      tally->transient_error = tally->transient_error || err->transient();
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
  return [](const YAML::Node& section, const std::string& path, const HostInfo&) -> Builder {
    invalidate::Settings settings = invalidate::parse_settings(section, path);
    return [settings](Context& ctx) -> std::unique_ptr<Handler> {
      return std::make_unique<Invalidate>(ctx, settings);
    };
  };
}

}  // namespace tierd
