#include "tier/sync/lock.hpp"

#include <algorithm>
#include <random>

#include "tier/backoff.hpp"

namespace tier {

namespace {
using Clock = std::chrono::steady_clock;
using ms = std::chrono::milliseconds;
}  // namespace

std::unique_ptr<Lock> Lock::acquire(Client& client, const Locks& locks, std::string name,
                                    LockOptions options) {
  const std::string token = Locks::new_token();
  const auto deadline = Clock::now() + options.wait;
  std::optional<Subscription> notices;
  for (int attempt = 0;; ++attempt) {
    const auto sent = Clock::now();  // the lease runs from here at the latest, by our clock
    LockGrant g = client.run(locks.try_acquire(name, token, options.lease));
    if (g.acquired) {
      return std::unique_ptr<Lock>(
          new Lock(client, locks, std::move(name), token, g.fence, std::move(options), sent));
    }
    const auto now = Clock::now();
    if (now >= deadline) {
      return nullptr;
    }
    if (!notices) {
      // Subscribed before the next try, so a release in between is not missed.
      notices.emplace(client.subscribe({locks.release_channel(name)}, {}));
      continue;
    }
    const ms pause = std::min({backoff_delay(ms(10), ms(500), attempt), g.ttl + ms(1),
                               std::chrono::duration_cast<ms>(deadline - now) + ms(1)});
    (void)notices->next(pause);  // a release notice ends the wait early
  }
}

Lock::Lock(Client& client, const Locks& locks, std::string name, std::string token,
           std::int64_t fence, LockOptions options, Clock::time_point since)
    : client_(client),
      locks_(locks),
      name_(std::move(name)),
      token_(std::move(token)),
      fence_(fence),
      options_(std::move(options)),
      valid_until_(since + options_.lease) {
  if (options_.renew) {
    renewer_ = std::thread([this] { renew_loop(); });
  }
}

Lock::~Lock() {
  release();
}

void Lock::declare_lost() {
  if (!lost_.exchange(true) && options_.on_lost) {
    options_.on_lost();
  }
}

void Lock::renew_loop() {
  const ms period = std::max(ms(1), options_.lease / 3);
  std::unique_lock lock(m_);
  for (;;) {
    // Wake for the next renewal, or at the lease's end if renewals keep failing.
    const auto next = std::min(Clock::now() + period, valid_until_);
    if (cv_.wait_until(lock, next, [&] { return stop_; })) {
      return;
    }
    if (Clock::now() >= valid_until_) {
      declare_lost();  // never later than the lease's end by our own clock
      return;
    }
    lock.unlock();
    const auto sent = Clock::now();
    auto r = client_.try_run(locks_.extend(name_, token_, options_.lease));
    lock.lock();
    if (stop_) {
      return;
    }
    if (r.ok() && *r) {
      valid_until_ = sent + options_.lease;
    } else if (r.ok()) {
      declare_lost();  // refused: taken over, or expired
      return;
    }
    // A transport error: try again until the lease's end.
  }
}

void Lock::release() {
  {
    std::lock_guard lock(m_);
    if (released_) {
      return;
    }
    released_ = true;
    stop_ = true;
  }
  cv_.notify_all();
  if (renewer_.joinable()) {
    renewer_.join();  // no renewal outlives a release
  }
  if (!lost_) {
    (void)client_.try_run(locks_.release(name_, token_));
  }
}

}  // namespace tier
