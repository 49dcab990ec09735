#pragma once
// Exponential backoff with jitter, shared by every reconnect and retry loop in libtier.

#include <algorithm>
#include <chrono>
#include <random>

namespace tier {

/// The delay before retry number `attempt` (0 = the first): `min` doubled per attempt up to
/// `max`, then a random point in [d/2, d], so that clients cut off together do not all come
/// back at the same moment.
inline std::chrono::milliseconds backoff_delay(std::chrono::milliseconds min,
                                               std::chrono::milliseconds max, int attempt) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  const long long lo = std::max<long long>(min.count(), 0);
  const long long hi = std::max<long long>(lo, max.count());
  const long long d = std::min(hi, lo << std::clamp(attempt, 0, 30));
  std::uniform_real_distribution<double> jitter(0.5, 1.0);
  return std::chrono::milliseconds{static_cast<long long>(static_cast<double>(d) * jitter(rng))};
}

}  // namespace tier
