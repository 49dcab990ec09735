#pragma once
// tierd::Timer on a libuv timer, for the daemon's own code and for Context::start_timer.
// The uv handle lives in a heap box freed by uv_close's callback, so cancelling (or
// destroying the handle) inside the timer's own callback is safe.

#include <uv.h>

#include <chrono>
#include <functional>

#include "handlers/handler.hpp"

namespace tierd {

class UvTimer final : public Timer {
 public:
  UvTimer(uv_loop_t* loop, std::chrono::milliseconds delay, std::chrono::milliseconds repeat,
          std::function<void()> cb)
      : box_(new Box) {
    box_->cb = std::move(cb);
    uv_timer_init(loop, &box_->timer);
    box_->timer.data = box_;
    uv_timer_start(
        &box_->timer,
        [](uv_timer_t* t) {
          auto* box = static_cast<Box*>(t->data);
          box->cb();
        },
        static_cast<std::uint64_t>(delay.count()), static_cast<std::uint64_t>(repeat.count()));
  }
  ~UvTimer() override { cancel(); }
  UvTimer(const UvTimer&) = delete;
  UvTimer& operator=(const UvTimer&) = delete;

  void cancel() override {
    if (box_ == nullptr) {
      return;
    }
    uv_timer_stop(&box_->timer);
    uv_close(reinterpret_cast<uv_handle_t*>(&box_->timer),
             [](uv_handle_t* h) { delete static_cast<Box*>(h->data); });
    box_ = nullptr;
  }

 private:
  struct Box {
    uv_timer_t timer;
    std::function<void()> cb;
  };
  Box* box_;
};

}  // namespace tierd
