#pragma once
// One owner per libuv handle (uvw: "always close your handles"). The uv handle lives in a
// heap box that uv_close's callback frees, so the owner may be destroyed, or close() be
// called, from inside the handle's own callback, and the memory stays valid until libuv is
// done with it. Callbacks never run after close().

#include <uv.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <utility>

namespace tier::uv {

namespace detail {

template <class H, class Cb>
struct Box {
  H handle{};
  Cb cb;
  bool closed = false;

  // Runs the callback moved out of the box, so that it may re-arm the handle with another
  // callback or close it while it runs; put back afterwards unless either happened. A move,
  // not a copy: no allocation per event.
  template <class... Args>
  void fire(Args... args) {
    if (closed || !cb) {
      return;
    }
    Cb running = std::move(cb);
    cb = nullptr;
    running(args...);
    if (!closed && !cb) {
      cb = std::move(running);
    }
  }
};

template <class H, class Cb>
void close_box(Box<H, Cb>*& box) {
  if (box == nullptr) {
    return;
  }
  box->closed = true;
  box->cb = nullptr;  // what it captured goes now, not when libuv gets round to it
  uv_close(reinterpret_cast<uv_handle_t*>(&box->handle),
           [](uv_handle_t* h) { delete static_cast<Box<H, Cb>*>(h->data); });
  box = nullptr;
}

}  // namespace detail

/// A libuv timer. start() again re-arms it with a new callback.
class Timer {
 public:
  explicit Timer(uv_loop_t* loop) : box_(new Box) {
    uv_timer_init(loop, &box_->handle);
    box_->handle.data = box_;
  }
  ~Timer() { close(); }
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;
  Timer(Timer&& other) noexcept : box_(std::exchange(other.box_, nullptr)) {}
  Timer& operator=(Timer&& other) noexcept {
    if (this != &other) {
      close();
      box_ = std::exchange(other.box_, nullptr);
    }
    return *this;
  }

  /// Runs `cb` after `delay` (counted from this call), then every `repeat` (0 = once).
  void start(std::chrono::milliseconds delay, std::chrono::milliseconds repeat,
             std::function<void()> cb) {
    if (box_ == nullptr) {
      return;
    }
    box_->cb = std::move(cb);
    // From now, not from when this loop turn began (libuv's cached time): a delay is never
    // shortened by the time the turn has already taken.
    uv_update_time(box_->handle.loop);
    uv_timer_start(
        &box_->handle, [](uv_timer_t* t) { static_cast<Box*>(t->data)->fire(); },
        static_cast<std::uint64_t>(std::max<std::int64_t>(delay.count(), 0)),
        static_cast<std::uint64_t>(std::max<std::int64_t>(repeat.count(), 0)));
  }
  void stop() {
    if (box_ != nullptr) {
      uv_timer_stop(&box_->handle);
    }
  }
  bool active() const {
    return box_ != nullptr && uv_is_active(reinterpret_cast<const uv_handle_t*>(&box_->handle));
  }
  /// The timer alone does not keep the loop running.
  void unref() {
    if (box_ != nullptr) {
      uv_unref(reinterpret_cast<uv_handle_t*>(&box_->handle));
    }
  }
  /// Stops for good; safe to call twice, and from the callback.
  void close() { detail::close_box(box_); }
  explicit operator bool() const { return box_ != nullptr; }

 private:
  using Box = detail::Box<uv_timer_t, std::function<void()>>;
  Box* box_;
};

/// A libuv signal watcher (the signal is delivered on the loop, not in a signal handler).
class Signal {
 public:
  Signal(uv_loop_t* loop, int signum, std::function<void()> cb) : box_(new Box) {
    box_->cb = std::move(cb);
    uv_signal_init(loop, &box_->handle);
    box_->handle.data = box_;
    uv_signal_start(
        &box_->handle, [](uv_signal_t* h, int) { static_cast<Box*>(h->data)->fire(); }, signum);
  }
  ~Signal() { close(); }
  Signal(const Signal&) = delete;
  Signal& operator=(const Signal&) = delete;
  void close() { detail::close_box(box_); }

 private:
  using Box = detail::Box<uv_signal_t, std::function<void()>>;
  Box* box_;
};

/// Watches a socket the handle does not own (libpq's). The callback gets libuv's status and
/// events; close() before the descriptor is closed or reused.
class Poll {
 public:
  using Callback = std::function<void(int status, int events)>;
  Poll(uv_loop_t* loop, int fd) : box_(new Box) {
    uv_poll_init(loop, &box_->handle, fd);
    box_->handle.data = box_;
  }
  ~Poll() { close(); }
  Poll(const Poll&) = delete;
  Poll& operator=(const Poll&) = delete;

  void start(int events, Callback cb) {
    if (box_ == nullptr) {
      return;
    }
    box_->cb = std::move(cb);
    uv_poll_start(&box_->handle, events, [](uv_poll_t* h, int status, int ev) {
      static_cast<Box*>(h->data)->fire(status, ev);
    });
  }
  void stop() {
    if (box_ != nullptr) {
      uv_poll_stop(&box_->handle);
    }
  }
  void close() { detail::close_box(box_); }
  explicit operator bool() const { return box_ != nullptr; }

 private:
  using Box = detail::Box<uv_poll_t, Callback>;
  Box* box_;
};

}  // namespace tier::uv
