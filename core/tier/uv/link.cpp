#include "tier/uv/link.hpp"

#include <algorithm>
#include <cctype>

#include "tier/backoff.hpp"
#include "tier/uv/handle.hpp"
#include "tier/uv/resolve.hpp"

namespace tier {

const char* to_string(LinkState s) noexcept {
  switch (s) {
    case LinkState::disconnected:
      return "disconnected";
    case LinkState::connecting:
      return "connecting";
    case LinkState::ready:
      return "ready";
    case LinkState::closed:
      return "closed";
  }
  return "unknown";
}

const char* failure_cause(std::string_view reason) noexcept {
  auto has = [&](std::string_view what) {
    return std::search(reason.begin(), reason.end(), what.begin(), what.end(), [](char a, char b) {
             return std::tolower(static_cast<unsigned char>(a)) ==
                    std::tolower(static_cast<unsigned char>(b));
           }) != reason.end();
  };
  // Order matters: "authentication failed ... connection to server" is about the password.
  if (has("WRONGPASS") || has("NOAUTH") || has("AUTH ") || has("authentication failed") ||
      has("password") || has("NOPERM")) {
    return "auth refused";
  }
  if (has("resolve ") || has("translate host name") || has("Name or service not known") ||
      has("unknown node or service") || has("temporary failure in name resolution")) {
    return "name not resolved";
  }
  if (has("refused")) {
    return "refused";
  }
  if (has("timed out") || has("timeout") || has("deadline") || has("health check failed")) {
    return "timeout";
  }
  if (has("unreachable") || has("no route to host")) {
    return "unreachable";
  }
  if (has("closed the connection") || has("reset by peer") || has("server closed") ||
      has("terminating connection") || has("lost ")) {
    return "closed by server";
  }
  return "error";
}

namespace uv {

Reconnector::Reconnector(uv_loop_t* loop, ReconnectPolicy policy, Hooks hooks)
    : loop_(loop), policy_(policy), hooks_(std::move(hooks)) {}

Reconnector::~Reconnector() = default;

void Reconnector::start(std::string resolve, std::string peer) {
  if (started_ || state_ == LinkState::closed) {
    return;
  }
  started_ = true;
  resolve_ = std::move(resolve);
  peer_ = std::move(peer);
  tick_ = std::make_unique<Timer>(loop_);
  retry_ = std::make_unique<Timer>(loop_);
  tick_->start(policy_.tick, policy_.tick, [this] {
    auto keep = hooks_.hold();
    const auto now = Clock::now();
    if (state_ == LinkState::connecting && now >= deadline_) {
      lost("connect " + peer_ + ": timed out after " +
           std::to_string(policy_.connect_timeout.count()) + " ms");
    }
    if (state_ != LinkState::closed && hooks_.tick) {
      hooks_.tick(now);
    }
  });
  tick_->unref();  // the tick alone keeps no loop alive
  attempt();
}

void Reconnector::attempt() {
  if (state_ == LinkState::closed) {
    return;
  }
  const std::uint64_t id = ++attempt_id_;
  deadline_ = Clock::now() + policy_.connect_timeout;
  set_state(LinkState::connecting, "connecting to " + peer_);
  if (state_ != LinkState::connecting || attempt_id_ != id) {
    return;  // the state callback closed the link
  }
  if (resolve_.empty()) {
    hooks_.dial("");
    return;
  }
  std::weak_ptr<void> weak = hooks_.hold();
  resolve_host(loop_, resolve_, [this, weak, id](Result<std::string> ip) {
    auto keep = weak.lock();
    if (!keep || state_ != LinkState::connecting || attempt_id_ != id) {
      return;  // gone, closed, or timed out and retried meanwhile
    }
    if (!ip.ok()) {
      lost(ip.error().message);
      return;
    }
    hooks_.dial(*ip);
  });
}

void Reconnector::ready(const std::string& reason) {
  if (state_ == LinkState::closed) {
    return;
  }
  backoff_attempt_ = 0;
  last_error_.clear();
  set_state(LinkState::ready, reason);
}

void Reconnector::lost(const std::string& reason) {
  if (state_ == LinkState::closed) {
    return;
  }
  auto keep = hooks_.hold();
  const bool was_ready = state_ == LinkState::ready;
  ++attempt_id_;  // a resolution still running belongs to a finished attempt
  hooks_.drop();
  if (was_ready) {
    ++disconnects_;
  }
  last_error_ = reason;
  set_state(LinkState::disconnected, reason);
  if (state_ != LinkState::disconnected || !retry_) {
    return;
  }
  retry_->start(backoff_delay(policy_.reconnect_min, policy_.reconnect_max, backoff_attempt_++),
                std::chrono::milliseconds{0}, [this] {
                  auto keep = hooks_.hold();
                  if (state_ == LinkState::disconnected) {
                    attempt();
                  }
                });
}

void Reconnector::close() {
  if (state_ == LinkState::closed) {
    return;
  }
  ++attempt_id_;
  set_state(LinkState::closed, "closed");
  if (tick_) {
    tick_->close();
  }
  if (retry_) {
    retry_->close();
  }
}

void Reconnector::set_state(LinkState s, const std::string& reason) {
  if (s == state_) {
    return;
  }
  state_ = s;
  if (state_cb_) {
    state_cb_(s, reason);
  }
}

}  // namespace uv
}  // namespace tier
