#include "daemon/notify.hpp"

#include <systemd/sd-daemon.h>
#include <time.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>

namespace tierd::notify {

namespace {

bool send(const std::string& message) {
  if (!enabled()) {
    return false;
  }
  return sd_notify(0, message.c_str()) > 0;
}

std::string one_line(std::string_view text) {
  std::string out(text.substr(0, 512));
  for (char& ch : out) {
    if (ch == '\n' || ch == '\r') {
      ch = ' ';
    }
  }
  return out;
}

}  // namespace

bool enabled() {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  return socket != nullptr && socket[0] != '\0';
}

bool ready(std::string_view status_text) {
  std::string message = "READY=1";
  if (!status_text.empty()) {
    message += "\nSTATUS=" + one_line(status_text);
  }
  return send(message);
}

bool reloading() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  unsigned long long usec = static_cast<unsigned long long>(ts.tv_sec) * 1000000ULL +
                            static_cast<unsigned long long>(ts.tv_nsec) / 1000ULL;
  return send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec));
}

bool stopping() {
  return send("STOPPING=1");
}

bool status(std::string_view text) {
  return send("STATUS=" + one_line(text));
}

bool watchdog() {
  return send("WATCHDOG=1");
}

std::chrono::microseconds watchdog_interval() {
  uint64_t usec = 0;
  // > 0 only when WATCHDOG_USEC is set and WATCHDOG_PID (if set) is this process.
  if (sd_watchdog_enabled(0, &usec) <= 0) {
    return std::chrono::microseconds(0);
  }
  return std::chrono::microseconds(usec);
}

Watchdog::Watchdog(uv_loop_t* loop) : timer_(loop) {}

Watchdog::~Watchdog() = default;

bool Watchdog::start() {
  auto interval = watchdog_interval();
  if (interval.count() == 0 || timer_.active() || stopped_) {
    return false;
  }
  // Half the interval, as sd_watchdog_enabled(3) recommends; at least 1 ms.
  const auto period = std::chrono::milliseconds(std::max<std::int64_t>(
      1, std::chrono::duration_cast<std::chrono::milliseconds>(interval).count() / 2));
  timer_.start(std::chrono::milliseconds(0), period, [this] {
    if (watchdog()) {
      ++pings_;
    }
  });
  return true;
}

void Watchdog::stop() {
  stopped_ = true;
  timer_.close();
}

unsigned long Watchdog::pings() const {
  return pings_;
}

}  // namespace tierd::notify
