#pragma once
// A lock held on the loop (docs/locks.md): LockHolder campaigns for a lock (while another holder
// has it, trying again at a third of the lease or when that holder's lease ends, whichever
// comes first: a dead holder is replaced within one lease of its last renewal), renews it with a
// loop timer at a third of the lease while held, and declares it lost at once when a renewal is
// refused or when no renewal has succeeded by the lease's end by this process's clock. Leader
// election is a LockHolder on lock:tierd:leader:{job}. All calls on the loop's thread.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "tier/lock.hpp"
#include "tier/uv/async_client.hpp"

namespace tier::uv {

class LockHolder {
 public:
  /// `on_change(true, fence)` when the lock is gained, `on_change(false, 0)` when it is lost.
  LockHolder(AsyncClient& client, Locks locks, std::string name, std::chrono::milliseconds lease,
             std::function<void(bool held, std::int64_t fence)> on_change);
  /// Stops and releases (without calling back).
  ~LockHolder();
  LockHolder(const LockHolder&) = delete;
  LockHolder& operator=(const LockHolder&) = delete;

  void start();
  /// Stops campaigning and renewing; releases the lock if held. No callback after this.
  void stop();
  bool held() const;
  std::int64_t fence() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace tier::uv
