#include "tier/uv/lock.hpp"

#include "tier/uv/handle.hpp"

namespace tier::uv {

namespace {
using Clock = std::chrono::steady_clock;
using ms = std::chrono::milliseconds;
}  // namespace

struct LockHolder::State : std::enable_shared_from_this<State> {
  State(AsyncClient& c, Locks l, std::string n, ms lease_ms,
        std::function<void(bool, std::int64_t)> cb)
      : client(c),
        locks(std::move(l)),
        name(std::move(n)),
        lease(lease_ms),
        on_change(std::move(cb)),
        token(Locks::new_token()),
        timer(c.loop()) {}

  void schedule(ms delay) {
    timer.start(delay, ms(0), [self = shared_from_this()] { self->tick(); });
  }

  void tick() {
    if (stopped || busy) {
      return;
    }
    busy = true;
    const auto sent = Clock::now();
    if (!held) {
      client.run(locks.try_acquire(name, token, lease),
                 [self = shared_from_this(), sent](Result<LockGrant> r) {
                   self->busy = false;
                   if (self->stopped) {
                     return;
                   }
                   if (r.ok() && r->acquired) {
                     self->held = true;
                     self->fence = r->fence;
                     self->valid_until = sent + self->lease;
                     self->notify(true);
                     self->schedule(self->period());
                     return;
                   }
                   // Held elsewhere: try again when its lease ends (the reply says when), so
                   // a holder that died is replaced within one lease of its last renewal. A
                   // TTL of 0 means "ends within this millisecond" (the loop clock counts
                   // whole ms), so 2 ms of margin rather than a whole period's wait.
                   ms next = self->period();
                   if (r.ok() && r->ttl >= ms(0)) {
                     next = std::min(next, r->ttl + ms(2));
                   }
                   self->schedule(next);
                 });
      return;
    }
    if (Clock::now() >= valid_until) {
      busy = false;
      lose();
      return;
    }
    client.run(locks.extend(name, token, lease), [self = shared_from_this(), sent](Result<bool> r) {
      self->busy = false;
      if (self->stopped || !self->held) {
        return;
      }
      if (r.ok() && *r) {
        self->valid_until = sent + self->lease;
      } else if (r.ok()) {
        self->lose();  // refused: taken over or expired
        return;
      }
      // A transport error: again soon, but never past the lease's end.
      const auto left = std::chrono::duration_cast<ms>(self->valid_until - Clock::now());
      self->schedule(std::max(ms(0), std::min(self->period(), left)));
    });
  }

  void lose() {
    held = false;
    fence = 0;
    notify(false);
    schedule(period());  // campaign again
  }

  void notify(bool now_held) {
    if (on_change && !stopped) {
      on_change(now_held, now_held ? fence : 0);
    }
  }

  ms period() const { return std::max(ms(1), lease / 3); }

  AsyncClient& client;
  Locks locks;
  std::string name;
  ms lease;
  std::function<void(bool, std::int64_t)> on_change;
  std::string token;
  Timer timer;
  bool held = false;
  bool busy = false;
  bool stopped = false;
  std::int64_t fence = 0;
  Clock::time_point valid_until{};
};

LockHolder::LockHolder(AsyncClient& client, Locks locks, std::string name, ms lease,
                       std::function<void(bool, std::int64_t)> on_change)
    : state_(std::make_shared<State>(client, std::move(locks), std::move(name), lease,
                                     std::move(on_change))) {}

LockHolder::~LockHolder() {
  stop();
}

void LockHolder::start() {
  if (!state_->stopped) {
    state_->schedule(ms(0));
  }
}

void LockHolder::stop() {
  State& s = *state_;
  if (s.stopped) {
    return;
  }
  s.stopped = true;
  s.on_change = nullptr;
  s.timer.close();
  if (s.held) {
    s.held = false;
    s.client.run(s.locks.release(s.name, s.token), [](Result<bool>) {});
  }
}

bool LockHolder::held() const {
  return state_->held;
}

std::int64_t LockHolder::fence() const {
  return state_->fence;
}

}  // namespace tier::uv
