#pragma once
// Distributed locks with fencing tokens (docs/locks.md): the steps as ops of one script
// (core/lua/lock.lua). A lock is lock:{name} holding the holder's random token with a lease;
// every acquisition also gets a fencing token from lock:{name}:fence, a counter that only
// grows, which the guarded service checks (a write carrying an older token is refused).
// Release and extend compare the token: a holder never releases or extends a lock it lost.
// The drivers that wait and renew are per transport (tier/sync/lock.hpp).

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "tier/op.hpp"

namespace tier {

struct LockGrant {
  bool acquired = false;
  std::int64_t fence = 0;  ///< acquired: the fencing token
  /// acquired: the lease; else how long the current holder still has.
  std::chrono::milliseconds ttl{0};
};

struct LockStatus {
  bool held = false;
  std::chrono::milliseconds ttl{0};
  std::int64_t last_fence = 0;
};

class Locks {
 public:
  explicit Locks(std::string prefix = "") : prefix_(std::move(prefix)) {}

  /// lock:{name} (with the namespace prefix); names are check_id's ids without '{' or '}'.
  Result<std::string> key(std::string_view name) const;
  /// The channel a release is announced on (waiters wake early).
  std::string release_channel(std::string_view name) const;

  Op<LockGrant> try_acquire(std::string_view name, const std::string& token,
                            std::chrono::milliseconds lease) const;
  Op<bool> extend(std::string_view name, const std::string& token,
                  std::chrono::milliseconds lease) const;
  Op<bool> release(std::string_view name, const std::string& token) const;
  Op<LockStatus> status(std::string_view name) const;

  /// A random token (128 bits, hex).
  static std::string new_token();

 private:
  std::string prefix_;
};

}  // namespace tier
