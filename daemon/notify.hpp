#pragma once
// systemd service notifications (sd_notify): readiness, reload, stop, status text and the
// watchdog keep-alive. Every call is a no-op when NOTIFY_SOCKET is unset (not under systemd).

#include <uv.h>

#include <chrono>
#include <string_view>

#include "tier/uv/handle.hpp"

namespace tierd::notify {

/// True when the service manager gave us a notification socket.
bool enabled();

// Each sender returns true when the message went out, false when notifications are off or the
// send failed (a lost notification must not stop the daemon; systemd's timeouts catch it).

/// READY=1, with an optional STATUS= line.
bool ready(std::string_view status_text = {});
/// RELOADING=1 with MONOTONIC_USEC= (systemd 253+ requires it for Type=notify-reload; older
/// versions ignore it). Send ready() again once the new config is in force.
bool reloading();
/// STOPPING=1: the drain has begun.
bool stopping();
/// STATUS=<text>, shown by `systemctl status`; newlines become spaces.
bool status(std::string_view text);
/// WATCHDOG=1.
bool watchdog();

/// The watchdog interval systemd expects (WatchdogSec=), or zero when the watchdog is off.
std::chrono::microseconds watchdog_interval();

/// Sends WATCHDOG=1 from a loop timer at half the watchdog interval, so a stalled loop stops
/// the pings and systemd restarts the service.
class Watchdog {
 public:
  explicit Watchdog(uv_loop_t* loop);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  /// Arms the timer; returns false (and arms nothing) when the watchdog is off.
  bool start();
  /// Stops pinging (e.g. at the end of the drain) and closes the timer.
  void stop();
  /// Pings sent so far.
  unsigned long pings() const;

 private:
  tier::uv::Timer timer_;
  bool stopped_ = false;
  unsigned long pings_ = 0;
};

}  // namespace tierd::notify
