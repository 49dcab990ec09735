// ratelimit check / status / reset and quota incr / usage / reset / set-limit: the rate
// limits and quotas of docs/ratelimit.md from the shell, through the same scripts as the
// library (core/lua/ratelimit.lua, core/lua/quota.lua).

#include <CLI/CLI.hpp>
#include <iostream>
#include <optional>

#include "context.hpp"
#include "tier/errors.hpp"
#include "tier/numbers.hpp"
#include "tier/quota.hpp"
#include "tier/ratelimit.hpp"

namespace tierctl {
namespace {

struct LimitArgs {
  std::string user;
  std::string algo = "fixed_window";
  std::int64_t limit = 0;
  std::string window = "60s";
  std::int64_t burst = 0;
  std::int64_t cost = 1;
  std::string name = "requests";
  bool shadow = false;
};

void add_limit_options(CLI::App* cmd, LimitArgs& a, bool with_cost) {
  cmd->add_option("USER", a.user, "User id")->required();
  cmd->add_option("--algo", a.algo,
                  "fixed_window, sliding_log, sliding_counter, token_bucket, leaky_bucket or "
                  "gcra")
      ->capture_default_str();
  cmd->add_option("--limit", a.limit, "Requests (cost units) per window")->required();
  cmd->add_option("--window", a.window, "Window: 500ms, 60s, 1m, 1h, 1d")->capture_default_str();
  cmd->add_option("--burst", a.burst,
                  "Capacity of token_bucket, leaky_bucket and gcra (default: the limit)");
  cmd->add_option("--name", a.name, "Tells several limits of one user apart")
      ->capture_default_str();
  if (with_cost) {
    cmd->add_option("--cost", a.cost, "Units this request takes")->capture_default_str();
  }
}

tier::RateLimit to_limit(const LimitArgs& a) {
  tier::RateLimit l;
  auto algo = tier::parse_rate_algorithm(a.algo);
  if (!algo) {
    throw tier::InvalidArgument("--algo '" + a.algo +
                                "': one of fixed_window, sliding_log, sliding_counter, "
                                "token_bucket, leaky_bucket, gcra");
  }
  auto window = tier::parse_duration(a.window);
  if (!window) {
    throw tier::InvalidArgument("--window '" + a.window +
                                "': a positive duration with its unit (500ms, 60s, 1m, 1h, 1d)");
  }
  l.algorithm = *algo;
  l.limit = a.limit;
  l.window = *window;
  l.burst = a.burst;
  l.name = a.name;
  return l;
}

Json result_json(const tier::RateResult& r) {
  return {{"allowed", r.allowed},
          {"limit", r.limit},
          {"remaining", r.remaining},
          {"retry_after_ms", r.retry_after.count()},
          {"reset_after_ms", r.reset_after.count()},
          {"decision", tier::to_string(r.decision)}};
}

int print_result(const Context& ctx, const tier::RateResult& r) {
  if (ctx.options.json) {
    Context::print_json(result_json(r));
  } else {
    std::cout << tier::to_string(r.decision) << " limit=" << r.limit << " remaining=" << r.remaining
              << " retry_after_ms=" << r.retry_after.count()
              << " reset_after_ms=" << r.reset_after.count() << '\n';
  }
  return r.allowed ? kOk : kDenied;
}

Json period_json(const tier::QuotaPeriod& p) {
  Json j{{"period", p.key}, {"used", p.used}, {"limit", p.limit}};
  j["ratio"] = p.limit > 0 ? Json(p.ratio()) : Json(nullptr);
  return j;
}

int print_usage(const Context& ctx, const tier::QuotaUsage& u) {
  if (ctx.options.json) {
    Json warnings = Json::array();
    for (const auto& w : u.warnings) {
      warnings.push_back(Json::parse(w, nullptr, false));
    }
    Context::print_json({{"allowed", u.allowed},
                         {"daily", period_json(u.daily)},
                         {"monthly", period_json(u.monthly)},
                         {"warnings", warnings}});
  } else {
    auto line = [](const char* name, const tier::QuotaPeriod& p) {
      std::cout << name << ' ' << p.key << ' ' << p.used << '/'
                << (p.limit > 0 ? std::to_string(p.limit) : std::string("-")) << '\n';
    };
    if (!u.allowed) {
      std::cout << "refused: over the limit, nothing counted\n";
    }
    line("daily", u.daily);
    line("monthly", u.monthly);
    for (const auto& w : u.warnings) {
      std::cout << "warning " << w << '\n';
    }
  }
  return u.allowed ? kOk : kDenied;
}

}  // namespace

void add_limit_commands(CLI::App& app, Context& ctx) {
  auto* rl = app.add_subcommand("ratelimit", "Rate limits: check, status, reset");
  rl->require_subcommand(1);
  rl->footer(
      "Keys: ratelimit:{USER}:<name>:<window_ms> (fixed_window), "
      "ratelimit:{USER}:<algorithm>:<name> (the others). A denied check exits 5.\n\n" +
      std::string(kExitCodesHelp));
  {
    auto a = std::make_shared<LimitArgs>();
    auto* cmd = rl->add_subcommand("check", "Check and consume; exits 5 when denied");
    add_limit_options(cmd, *a, true);
    cmd->add_flag("--shadow", a->shadow, "Report a denial but allow (exit 0)");
    ctx.on_run(cmd, [&ctx, a] {
      tier::RateLimiter limiter({.prefix = ctx.options.prefix, .shadow = a->shadow});
      return print_result(ctx, ctx.client().run(limiter.check(a->user, to_limit(*a), a->cost)));
    });
  }
  {
    auto a = std::make_shared<LimitArgs>();
    auto* cmd = rl->add_subcommand("status", "What a request would get now; consumes nothing");
    add_limit_options(cmd, *a, true);
    ctx.on_run(cmd, [&ctx, a] {
      tier::RateLimiter limiter({.prefix = ctx.options.prefix});
      return print_result(ctx, ctx.client().run(limiter.status(a->user, to_limit(*a), a->cost)));
    });
  }
  {
    auto a = std::make_shared<LimitArgs>();
    auto* cmd = rl->add_subcommand("reset", "Forget a limit's state for a user");
    add_limit_options(cmd, *a, false);
    ctx.on_run(cmd, [&ctx, a] {
      tier::RateLimiter limiter({.prefix = ctx.options.prefix});
      bool existed = ctx.client().run(limiter.reset(a->user, to_limit(*a)));
      if (ctx.options.json) {
        Context::print_json({{"reset", existed}});
      } else {
        std::cout << (existed ? "reset\n" : "nothing to reset\n");
      }
      return kOk;
    });
  }

  auto* quota = app.add_subcommand("quota", "Daily and monthly quotas: incr, usage, reset");
  quota->require_subcommand(1);
  quota->footer(
      "Keys: quota:{USER}:<metric>:<YYYY-MM-DD|YYYY-MM> (UTC); per-user limits "
      "ratelimit:{USER}:daily_limit and :monthly_limit win over --daily-limit/--monthly-limit. "
      "A refused --enforce increment exits 5.\n\n" +
      std::string(kExitCodesHelp));
  struct QuotaArgs {
    std::string user;
    std::string metric;
    std::int64_t amount = 1;
    std::int64_t daily = 0;
    std::int64_t monthly = 0;
    bool enforce = false;
    std::string channel = "system:quota_warning";
  };
  auto add_target = [](CLI::App* cmd, QuotaArgs& a) {
    cmd->add_option("USER", a.user, "User id")->required();
    cmd->add_option("METRIC", a.metric, "api_calls, analysis_runs, storage_bytes, ...")->required();
  };
  auto add_limits = [](CLI::App* cmd, QuotaArgs& a) {
    cmd->add_option("--daily-limit", a.daily, "Daily limit (0 = none)");
    cmd->add_option("--monthly-limit", a.monthly, "Monthly limit (0 = none)");
  };
  auto quotas = [&ctx](const QuotaArgs& a) {
    tier::QuotaOptions o;
    o.prefix = ctx.options.prefix;
    o.warning_channel = a.channel;
    return tier::Quotas(std::move(o));
  };
  {
    auto a = std::make_shared<QuotaArgs>();
    auto* cmd = quota->add_subcommand(
        "incr", "Add to today's and this month's usage; warnings are published once");
    add_target(cmd, *a);
    cmd->add_option("AMOUNT", a->amount, "How much (default 1)");
    add_limits(cmd, *a);
    cmd->add_flag("--enforce", a->enforce, "Refuse (exit 5) an increment that would pass a limit");
    cmd->add_option("--channel", a->channel, "Where warnings are published ('' = nowhere)")
        ->capture_default_str();
    ctx.on_run(cmd, [&ctx, a, quotas] {
      return print_usage(
          ctx, ctx.client().run(quotas(*a).increment(a->user, a->metric, a->amount,
                                                     {a->daily, a->monthly}, a->enforce)));
    });
  }
  {
    auto a = std::make_shared<QuotaArgs>();
    auto* cmd = quota->add_subcommand("usage", "Today's and this month's usage and limits");
    add_target(cmd, *a);
    add_limits(cmd, *a);
    ctx.on_run(cmd, [&ctx, a, quotas] {
      print_usage(ctx,
                  ctx.client().run(quotas(*a).usage(a->user, a->metric, {a->daily, a->monthly})));
      return kOk;
    });
  }
  {
    auto a = std::make_shared<QuotaArgs>();
    auto* cmd = quota->add_subcommand("reset", "Zero today's and this month's usage and warnings");
    add_target(cmd, *a);
    ctx.on_run(cmd, [&ctx, a, quotas] {
      print_usage(ctx, ctx.client().run(quotas(*a).reset(a->user, a->metric)));
      return kOk;
    });
  }
  {
    struct Args {
      std::string user;
      std::string period;
      std::optional<std::int64_t> limit;
      bool clear = false;
    };
    auto a = std::make_shared<Args>();
    auto* cmd = quota->add_subcommand("set-limit", "Set or clear a user's own daily/monthly limit");
    cmd->add_option("USER", a->user, "User id")->required();
    cmd->add_option("PERIOD", a->period, "daily or monthly")->required();
    cmd->add_option("LIMIT", a->limit, "The limit; omit with --clear");
    cmd->add_flag("--clear", a->clear, "Remove the user's own limit");
    ctx.on_run(cmd, [&ctx, a] {
      if (a->period != "daily" && a->period != "monthly") {
        throw tier::InvalidArgument("PERIOD '" + a->period + "': daily or monthly");
      }
      if (a->clear == a->limit.has_value()) {
        throw tier::InvalidArgument("give a LIMIT or --clear, not both or neither");
      }
      tier::Quotas q({.prefix = ctx.options.prefix});
      ctx.client().run(q.set_user_limit(
          a->user,
          a->period == "daily" ? tier::QuotaPeriodKind::daily : tier::QuotaPeriodKind::monthly,
          a->limit));
      if (ctx.options.json) {
        Context::print_json({{"user", a->user},
                             {"period", a->period},
                             {"limit", a->limit ? Json(*a->limit) : Json(nullptr)}});
      }
      return kOk;
    });
  }
}

}  // namespace tierctl
