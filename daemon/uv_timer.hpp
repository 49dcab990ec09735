#pragma once
// tierd::Timer (what Context::start_timer hands out) on tier::uv::Timer, the one owner of a
// libuv timer: cancelling or destroying it inside its own callback is safe.

#include <chrono>
#include <functional>

#include "handlers/handler.hpp"
#include "tier/uv/handle.hpp"

namespace tierd {

class UvTimer final : public Timer {
 public:
  UvTimer(uv_loop_t* loop, std::chrono::milliseconds delay, std::chrono::milliseconds repeat,
          std::function<void()> cb)
      : timer_(loop) {
    timer_.start(delay, repeat, std::move(cb));
  }
  void cancel() override { timer_.close(); }

 private:
  tier::uv::Timer timer_;
};

}  // namespace tierd
