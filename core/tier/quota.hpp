#pragma once
// Daily and monthly quotas (docs/ratelimit.md#quotas): usage counters per user and metric
// (api_calls, analysis_runs, storage_bytes or any other name), limits from the caller or
// per user from Redis, an enforce mode, and warnings published once when usage crosses a
// threshold of a limit. One Lua script (core/lua/quota.lua) does each step atomically.
//
// Keys (the user id between literal braces: one hash slot per user, cluster-ready):
//   quota:{user}:<metric>:<YYYY-MM-DD>, quota:{user}:<metric>:<YYYY-MM>     counters (UTC)
//   quota:{user}:<metric>:<period>:warned:<threshold>   a warning was sent (value: it)
//   ratelimit:{user}:daily_limit, ratelimit:{user}:monthly_limit           per-user limits

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tier/op.hpp"

namespace tier {

struct QuotaOptions {
  /// Namespace prefix before every key (DESIGN §4).
  std::string prefix;
  /// Ratios of a limit whose crossing publishes a warning, each once per period.
  std::vector<std::string> thresholds{"0.8", "0.9", "1"};
  /// Where warnings are published (DESIGN §5); empty = not published (still returned).
  std::string warning_channel = "system:quota_warning";
  /// How long counters live past the end of their period.
  std::chrono::seconds margin{86400};
};

/// Limits given by the caller; 0 = none. A per-user limit stored in Redis wins.
struct QuotaLimits {
  std::int64_t daily = 0;
  std::int64_t monthly = 0;
};

struct QuotaPeriod {
  std::string key;  ///< "2026-11-29" or "2026-11"
  std::int64_t used = 0;
  std::int64_t limit = 0;  ///< 0 = none
  double ratio() const { return limit > 0 ? static_cast<double>(used) / limit : 0.0; }
};

struct QuotaUsage {
  /// False when enforce refused the increment (nothing was counted).
  bool allowed = true;
  QuotaPeriod daily;
  QuotaPeriod monthly;
  /// The warnings this call published (JSON objects as in DESIGN §5).
  std::vector<std::string> warnings;
};

/// A point in time for the period computation; nullopt = Redis TIME. For replaying usage
/// and for tests of the day and month boundaries.
using QuotaTime = std::optional<std::chrono::system_clock::time_point>;

enum class QuotaPeriodKind { daily, monthly };

class Quotas {
 public:
  explicit Quotas(QuotaOptions options = {});

  /// Adds `amount` (>= 0) to the day's and the month's counters. With `enforce`, an
  /// increment that would pass a limit is refused (allowed = false) and counts nothing.
  Op<QuotaUsage> increment(std::string_view user_id, std::string_view metric,
                           std::int64_t amount = 1, QuotaLimits limits = {}, bool enforce = false,
                           QuotaTime at = std::nullopt) const;
  Op<QuotaUsage> usage(std::string_view user_id, std::string_view metric, QuotaLimits limits = {},
                       QuotaTime at = std::nullopt) const;
  /// Deletes the current day's and month's counters and warning markers.
  Op<QuotaUsage> reset(std::string_view user_id, std::string_view metric,
                       QuotaTime at = std::nullopt) const;

  /// Sets (or, with nullopt, removes) a user's own daily or monthly limit.
  Op<Unit> set_user_limit(std::string_view user_id, QuotaPeriodKind period,
                          std::optional<std::int64_t> limit) const;

  /// quota:{user}:<metric> (the counters are this plus ":<period>").
  Result<std::string> base_key(std::string_view user_id, std::string_view metric) const;
  Result<std::string> user_limit_key(std::string_view user_id, QuotaPeriodKind period) const;

  const QuotaOptions& options() const { return options_; }

 private:
  Op<QuotaUsage> call(const char* action, std::string_view user_id, std::string_view metric,
                      std::int64_t amount, QuotaLimits limits, bool enforce, QuotaTime at) const;
  QuotaOptions options_;
  std::optional<Error> bad_options_;
};

}  // namespace tier
