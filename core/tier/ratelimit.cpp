#include "tier/ratelimit.hpp"

#include <array>

#include "tier/keys.hpp"
#include "tier/script.hpp"

namespace tier {

namespace {

constexpr std::array<std::pair<RateAlgorithm, const char*>, 6> kAlgorithms{{
    {RateAlgorithm::fixed_window, "fixed_window"},
    {RateAlgorithm::sliding_log, "sliding_log"},
    {RateAlgorithm::sliding_counter, "sliding_counter"},
    {RateAlgorithm::token_bucket, "token_bucket"},
    {RateAlgorithm::leaky_bucket, "leaky_bucket"},
    {RateAlgorithm::gcra, "gcra"},
}};

bool has_capacity(RateAlgorithm a) {
  return a == RateAlgorithm::token_bucket || a == RateAlgorithm::leaky_bucket ||
         a == RateAlgorithm::gcra;
}

std::optional<Error> check_limit(const RateLimit& l, std::int64_t cost) {
  auto bad = [](const std::string& why) { return Error{ErrorKind::invalid, "rate limit: " + why}; };
  if (l.limit < 1) {
    return bad("limit must be at least 1, got " + std::to_string(l.limit));
  }
  if (l.window.count() < 1) {
    return bad("window must be at least 1 ms, got " + std::to_string(l.window.count()) + " ms");
  }
  if (l.burst < 0) {
    return bad("burst must not be negative, got " + std::to_string(l.burst));
  }
  if (cost < 1) {
    return bad("cost must be at least 1, got " + std::to_string(cost));
  }
  const std::int64_t capacity = has_capacity(l.algorithm) && l.burst > 0 ? l.burst : l.limit;
  if (cost > capacity) {
    return bad("cost " + std::to_string(cost) + " is above the " +
               (has_capacity(l.algorithm) && l.burst > 0 ? "burst " : "limit ") +
               std::to_string(capacity) + ": it could never be allowed");
  }
  return check_name(l.name, "rate limit name");
}

}  // namespace

const char* to_string(RateAlgorithm a) noexcept {
  for (const auto& [algo, name] : kAlgorithms) {
    if (algo == a) {
      return name;
    }
  }
  return "unknown";
}

std::optional<RateAlgorithm> parse_rate_algorithm(std::string_view s) noexcept {
  for (const auto& [algo, name] : kAlgorithms) {
    if (s == name) {
      return algo;
    }
  }
  return std::nullopt;
}

const char* to_string(RateDecision d) noexcept {
  switch (d) {
    case RateDecision::allowed:
      return "allowed";
    case RateDecision::denied:
      return "denied";
    case RateDecision::shadow_denied:
      return "shadow_denied";
    case RateDecision::fail_open:
      return "fail_open";
    case RateDecision::fail_closed:
      return "fail_closed";
  }
  return "unknown";
}

std::optional<Error> check_name(std::string_view name, std::string_view what) {
  if (name.empty() || name.size() > 64) {
    return Error{ErrorKind::invalid, std::string(what) + " must be 1 to 64 bytes"};
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-' || c == '.';
    if (!ok) {
      return Error{ErrorKind::invalid, std::string(what) + " '" + excerpt(name) +
                                           "': only letters, digits, '_', '-' and '.' are allowed"};
    }
  }
  return std::nullopt;
}

std::optional<Error> check_user_id(std::string_view user_id) {
  return check_tagged_id(user_id, "user_id");
}

RateLimiter::RateLimiter(RateLimiterOptions options)
    : options_(std::move(options)), counters_(std::make_shared<Counters>()) {}

Result<std::string> RateLimiter::key(std::string_view user_id, const RateLimit& limit) const {
  if (auto bad = check_user_id(user_id)) {
    return *bad;
  }
  if (auto bad = check_name(limit.name, "rate limit name")) {
    return *bad;
  }
  std::string k = options_.prefix + "ratelimit:{" + std::string(user_id) + "}:";
  if (limit.algorithm == RateAlgorithm::fixed_window) {
    return k + limit.name + ":" + std::to_string(limit.window.count());
  }
  return k + to_string(limit.algorithm) + ":" + limit.name;
}

Op<RateResult> RateLimiter::run(std::string_view user_id, const RateLimit& limit, std::int64_t cost,
                                bool peek) const {
  auto k = key(user_id, limit);
  if (!k.ok()) {
    return Op<RateResult>::fail(k.error());
  }
  if (auto bad = check_limit(limit, cost)) {
    return Op<RateResult>::fail(*bad);
  }
  Command cmd = Command::eval(script("ratelimit"), {*k},
                              {to_string(limit.algorithm), std::to_string(limit.limit),
                               std::to_string(limit.window.count()), std::to_string(limit.burst),
                               std::to_string(cost), peek ? "1" : "0"});
  return single<RateResult>(std::move(cmd),
                            [counters = counters_, shadow = options_.shadow, peek,
                             key = *k](Reply&& r) -> Result<RateResult> {
                              if (!r.is_array() || r.elements.size() != 5) {
                                return reply_error(r, "rate limit " + key);
                              }
                              for (const auto& e : r.elements) {
                                if (!e.is_integer()) {
                                  return reply_error(e, "rate limit " + key);
                                }
                              }
                              RateResult out;
                              out.allowed = r.elements[0].integer == 1;
                              out.limit = r.elements[1].integer;
                              out.remaining = r.elements[2].integer;
                              out.retry_after = std::chrono::milliseconds(r.elements[3].integer);
                              out.reset_after = std::chrono::milliseconds(r.elements[4].integer);
                              out.decision =
                                  out.allowed ? RateDecision::allowed : RateDecision::denied;
                              if (!out.allowed && shadow && !peek) {
                                out.allowed = true;
                                out.decision = RateDecision::shadow_denied;
                              }
                              if (!peek) {
                                auto& c = *counters;
                                (out.decision == RateDecision::allowed         ? c.allowed
                                 : out.decision == RateDecision::shadow_denied ? c.shadow_denied
                                                                               : c.denied)
                                    .fetch_add(1, std::memory_order_relaxed);
                              }
                              return out;
                            });
}

Op<RateResult> RateLimiter::check(std::string_view user_id, const RateLimit& limit,
                                  std::int64_t cost) const {
  return run(user_id, limit, cost, false);
}

Op<RateResult> RateLimiter::status(std::string_view user_id, const RateLimit& limit,
                                   std::int64_t cost) const {
  return run(user_id, limit, cost, true);
}

Op<bool> RateLimiter::reset(std::string_view user_id, const RateLimit& limit) const {
  auto k = key(user_id, limit);
  if (!k.ok()) {
    return Op<bool>::fail(k.error());
  }
  return single<bool>(Command::of({"UNLINK", *k}), [key = *k](Reply&& r) -> Result<bool> {
    auto n = decode_integer(std::move(r), key);
    if (!n.ok()) {
      return n.error();
    }
    return *n > 0;
  });
}

Result<RateResult> RateLimiter::decide(Result<RateResult> outcome, const RateLimit& limit) const {
  if (outcome.ok() || !outcome.error().transient()) {
    return outcome;
  }
  RateResult out;
  out.limit = limit.limit;
  const bool open = options_.on_unavailable == FailPolicy::open;
  out.allowed = open;
  out.decision = open ? RateDecision::fail_open : RateDecision::fail_closed;
  out.remaining = 0;
  out.retry_after = open ? std::chrono::milliseconds(0) : limit.window;
  (open ? counters_->fail_open : counters_->fail_closed).fetch_add(1, std::memory_order_relaxed);
  return out;
}

RateStats RateLimiter::stats() const {
  const auto& c = *counters_;
  return {c.allowed.load(), c.denied.load(), c.shadow_denied.load(), c.fail_open.load(),
          c.fail_closed.load()};
}

}  // namespace tier
