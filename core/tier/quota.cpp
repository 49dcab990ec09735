#include "tier/quota.hpp"

#include "tier/numbers.hpp"
#include "tier/ratelimit.hpp"
#include "tier/script.hpp"

namespace tier {

namespace {

std::optional<Error> check_threshold(const std::string& t) {
  const auto v = parse_double(t);
  if (!v || !(*v > 0.0 && *v <= 10.0)) {
    return Error{ErrorKind::invalid,
                 "quota threshold '" + t + "' must be a ratio above 0 and at most 10"};
  }
  return std::nullopt;
}

Result<QuotaPeriod> period_of(const Reply& key, const Reply& used, const Reply& limit) {
  if (!key.is_string() || !used.is_integer() || !limit.is_integer()) {
    return Error{ErrorKind::decode, "quota: unexpected reply from the quota script"};
  }
  return QuotaPeriod{key.str, used.integer, limit.integer};
}

}  // namespace

Quotas::Quotas(QuotaOptions options) : options_(std::move(options)) {
  for (const auto& t : options_.thresholds) {
    if (auto bad = check_threshold(t)) {
      bad_options_ = bad;
      break;
    }
  }
  if (!bad_options_ && options_.margin.count() < 0) {
    bad_options_ = Error{ErrorKind::invalid, "quota margin must not be negative"};
  }
}

Result<std::string> Quotas::base_key(std::string_view user_id, std::string_view metric) const {
  if (auto bad = check_user_id(user_id)) {
    return *bad;
  }
  if (auto bad = check_name(metric, "quota metric")) {
    return *bad;
  }
  return options_.prefix + "quota:{" + std::string(user_id) + "}:" + std::string(metric);
}

Result<std::string> Quotas::user_limit_key(std::string_view user_id, QuotaPeriodKind period) const {
  if (auto bad = check_user_id(user_id)) {
    return *bad;
  }
  return options_.prefix + "ratelimit:{" + std::string(user_id) +
         "}:" + (period == QuotaPeriodKind::daily ? "daily_limit" : "monthly_limit");
}

Op<QuotaUsage> Quotas::call(const char* action, std::string_view user_id, std::string_view metric,
                            std::int64_t amount, QuotaLimits limits, bool enforce,
                            QuotaTime at) const {
  if (bad_options_) {
    return Op<QuotaUsage>::fail(*bad_options_);
  }
  auto base = base_key(user_id, metric);
  if (!base.ok()) {
    return Op<QuotaUsage>::fail(base.error());
  }
  if (amount < 0) {
    return Op<QuotaUsage>::fail(Error{ErrorKind::invalid, "quota amount must not be negative"});
  }
  if (limits.daily < 0 || limits.monthly < 0) {
    return Op<QuotaUsage>::fail(
        Error{ErrorKind::invalid, "quota limits must not be negative (0 = none)"});
  }
  std::string thresholds;
  for (const auto& t : options_.thresholds) {
    thresholds += (thresholds.empty() ? "" : ",") + t;
  }
  std::string when;
  if (at) {
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(at->time_since_epoch()).count();
    if (ms < 0) {
      return Op<QuotaUsage>::fail(Error{ErrorKind::invalid, "quota time before 1970"});
    }
    when = std::to_string(ms);
  }
  Command cmd =
      Command::eval(script("quota"),
                    {*base, *user_limit_key(user_id, QuotaPeriodKind::daily),
                     *user_limit_key(user_id, QuotaPeriodKind::monthly)},
                    {action, std::to_string(amount), std::to_string(limits.daily),
                     std::to_string(limits.monthly), enforce ? "1" : "0", thresholds,
                     options_.warning_channel, std::string(user_id) + "\n" + std::string(metric),
                     when, std::to_string(options_.margin.count())});
  return single<QuotaUsage>(std::move(cmd), [key = *base](Reply&& r) -> Result<QuotaUsage> {
    if (!r.is_array() || r.elements.size() != 8 || !r.elements[0].is_integer() ||
        !r.elements[7].is_array()) {
      return reply_error(r, "quota " + key);
    }
    auto& e = r.elements;
    auto daily = period_of(e[1], e[2], e[3]);
    auto monthly = period_of(e[4], e[5], e[6]);
    if (!daily.ok() || !monthly.ok()) {
      return daily.ok() ? monthly.error() : daily.error();
    }
    QuotaUsage out;
    out.allowed = e[0].integer == 1;
    out.daily = std::move(daily).value();
    out.monthly = std::move(monthly).value();
    for (auto& w : e[7].elements) {
      out.warnings.push_back(std::move(w.str));
    }
    return out;
  });
}

Op<QuotaUsage> Quotas::increment(std::string_view user_id, std::string_view metric,
                                 std::int64_t amount, QuotaLimits limits, bool enforce,
                                 QuotaTime at) const {
  return call("incr", user_id, metric, amount, limits, enforce, at);
}

Op<QuotaUsage> Quotas::usage(std::string_view user_id, std::string_view metric, QuotaLimits limits,
                             QuotaTime at) const {
  return call("usage", user_id, metric, 0, limits, false, at);
}

Op<QuotaUsage> Quotas::reset(std::string_view user_id, std::string_view metric,
                             QuotaTime at) const {
  return call("reset", user_id, metric, 0, {}, false, at);
}

Op<Unit> Quotas::set_user_limit(std::string_view user_id, QuotaPeriodKind period,
                                std::optional<std::int64_t> limit) const {
  auto key = user_limit_key(user_id, period);
  if (!key.ok()) {
    return Op<Unit>::fail(key.error());
  }
  if (limit && *limit < 0) {
    return Op<Unit>::fail(Error{ErrorKind::invalid, "quota limit must not be negative"});
  }
  Command cmd =
      limit ? Command::of({"SET", *key, std::to_string(*limit)}) : Command::of({"UNLINK", *key});
  return single<Unit>(std::move(cmd), [k = *key](Reply&& r) -> Result<Unit> {
    if (r.is_error()) {
      return reply_error(r, k);
    }
    return Unit{};
  });
}

}  // namespace tier
