#pragma once
// Rate limits (docs/ratelimit.md): six algorithms in one Lua script (core/lua/ratelimit.lua)
// that takes its time from Redis TIME, one reply for all of them, a shadow mode and an
// explicit choice of what happens when Redis cannot be reached.
//
// Keys (the user id between literal braces: one hash slot per user, cluster-ready):
//   fixed_window   ratelimit:{user}:<name>:<window_ms>      (name "requests" by default)
//   the others     ratelimit:{user}:<algorithm>:<name>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "tier/op.hpp"

namespace tier {

enum class RateAlgorithm {
  fixed_window,
  sliding_log,
  sliding_counter,
  token_bucket,
  leaky_bucket,
  gcra
};
const char* to_string(RateAlgorithm a) noexcept;
std::optional<RateAlgorithm> parse_rate_algorithm(std::string_view s) noexcept;

/// One limit: `limit` units per `window`. token_bucket, leaky_bucket and gcra hold up to
/// `burst` units at once (0 = limit) and refill (leak) at limit per window.
struct RateLimit {
  RateAlgorithm algorithm = RateAlgorithm::fixed_window;
  std::int64_t limit = 0;
  std::chrono::milliseconds window{60000};
  std::int64_t burst = 0;
  /// Tells limits of one user apart: letters, digits, '_', '-', '.'; at most 64 bytes.
  std::string name = "requests";
};

/// What the caller should do, and why.
enum class RateDecision {
  allowed,
  denied,
  shadow_denied,  ///< would have been denied; allowed because the limiter runs in shadow mode
  fail_open,      ///< Redis could not be asked; allowed by the fail-open policy
  fail_closed,    ///< Redis could not be asked; denied by the fail-closed policy
};
const char* to_string(RateDecision d) noexcept;

struct RateResult {
  bool allowed = false;
  std::int64_t limit = 0;
  std::int64_t remaining = 0;
  /// 0 when allowed; else the wait until the same cost would be allowed.
  std::chrono::milliseconds retry_after{0};
  /// The wait until the limiter is back to its initial, empty state.
  std::chrono::milliseconds reset_after{0};
  RateDecision decision = RateDecision::denied;
};

enum class FailPolicy { open, closed };

struct RateLimiterOptions {
  /// Namespace prefix before every key (DESIGN §4).
  std::string prefix;
  /// Count and report, never deny: a denial becomes `shadow_denied` with allowed = true.
  bool shadow = false;
  /// When Redis is unreachable or does not answer in time.
  FailPolicy on_unavailable = FailPolicy::closed;
};

/// Decisions taken, by kind (shared by every copy of the limiter; thread-safe).
struct RateStats {
  std::uint64_t allowed = 0;
  std::uint64_t denied = 0;
  std::uint64_t shadow_denied = 0;
  std::uint64_t fail_open = 0;
  std::uint64_t fail_closed = 0;
};

class RateLimiter {
 public:
  explicit RateLimiter(RateLimiterOptions options = {});

  /// The key a limit of this user lives in.
  Result<std::string> key(std::string_view user_id, const RateLimit& limit) const;

  /// Checks and consumes `cost` units. The op fails with `invalid` on bad arguments (an
  /// unknown name, a limit or window below 1, a cost above what the limit can ever allow);
  /// on a transport error, pass the result to decide().
  Op<RateResult> check(std::string_view user_id, const RateLimit& limit,
                       std::int64_t cost = 1) const;
  /// What a request of `cost` would get now; consumes nothing.
  Op<RateResult> status(std::string_view user_id, const RateLimit& limit,
                        std::int64_t cost = 1) const;
  /// Forgets the limiter's state; true when there was some.
  Op<bool> reset(std::string_view user_id, const RateLimit& limit) const;

  /// The decision for a check's outcome: a result passes through (counted); a transient
  /// error (unreachable, timeout) becomes fail_open or fail_closed by the policy. Other
  /// errors (invalid arguments, a key of another type) stay errors.
  Result<RateResult> decide(Result<RateResult> outcome, const RateLimit& limit) const;

  RateStats stats() const;
  const RateLimiterOptions& options() const { return options_; }

 private:
  Op<RateResult> run(std::string_view user_id, const RateLimit& limit, std::int64_t cost,
                     bool peek) const;

  struct Counters {
    std::atomic<std::uint64_t> allowed{0}, denied{0}, shadow_denied{0}, fail_open{0},
        fail_closed{0};
  };
  RateLimiterOptions options_;
  std::shared_ptr<Counters> counters_;
};

/// Checks a limiter or quota name (a limit's name, a quota metric): letters, digits, '_',
/// '-', '.', 1 to 64 bytes. `what` names it in the error.
std::optional<Error> check_name(std::string_view name, std::string_view what);
/// A user id as it goes between the braces of a rate-limit or quota key: check_id's rules,
/// and no '{' or '}' (they would move the hash tag).
std::optional<Error> check_user_id(std::string_view user_id);

}  // namespace tier
