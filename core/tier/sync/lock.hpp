#pragma once
// A lock held with the blocking Client (docs/locks.md): acquire with a bounded wait (backoff
// with jitter, woken early by a release notice), renewal by a small thread at a third of the
// lease, and loss declared at once: when a renewal is refused (the lock was taken over or
// expired), or when no renewal has succeeded by the lease's end by this process's own clock.
// No renewal outlives release().

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "tier/lock.hpp"
#include "tier/sync/client.hpp"

namespace tier {

struct LockOptions {
  /// How long a holder keeps the lock without renewing it.
  std::chrono::milliseconds lease{10000};
  /// How long acquire() waits for the current holder; 0 = one try.
  std::chrono::milliseconds wait{0};
  /// Renew at lease/3 while held.
  bool renew = true;
  /// Called once, from the renewal thread, when the lock is lost.
  std::function<void()> on_lost;
};

class Lock {
 public:
  /// The lock, or nullptr when another holder kept it for all of options.wait.
  static std::unique_ptr<Lock> acquire(Client& client, const Locks& locks, std::string name,
                                       LockOptions options = {});
  ~Lock();  ///< release()
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;

  /// Stops renewing and releases (a lock already lost is left alone). Safe to call twice.
  void release();
  /// The fencing token of this acquisition: greater than every earlier one of this lock.
  std::int64_t fence() const { return fence_; }
  const std::string& token() const { return token_; }
  const std::string& name() const { return name_; }
  /// The lock was taken over, expired, or could not be renewed before the lease's end.
  bool lost() const { return lost_.load(); }

 private:
  Lock(Client& client, const Locks& locks, std::string name, std::string token, std::int64_t fence,
       LockOptions options, std::chrono::steady_clock::time_point since);
  void renew_loop();
  void declare_lost();

  Client& client_;
  const Locks& locks_;
  std::string name_;
  std::string token_;
  std::int64_t fence_;
  LockOptions options_;
  std::chrono::steady_clock::time_point valid_until_;  ///< by this process's clock
  std::atomic<bool> lost_{false};
  bool released_ = false;
  std::mutex m_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread renewer_;
};

}  // namespace tier
