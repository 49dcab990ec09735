// sd_notify messages as systemd receives them: a real unix datagram socket stands in for the
// service manager, NOTIFY_SOCKET points at it, and the test reads what the daemon sent.

#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <optional>
#include <string>

#include "daemon/notify.hpp"
#include "support/helpers.hpp"
#include "support/servers.hpp"

using namespace std::chrono_literals;
namespace notify = tierd::notify;

namespace {

// A bound datagram socket; NOTIFY_SOCKET names it while the object lives.
class FakeManager {
 public:
  FakeManager() : dir_("notify") {
    path_ = dir_.path() + "/notify.sock";
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    REQUIRE(path_.size() < sizeof(addr.sun_path));
    std::copy(path_.begin(), path_.end(), addr.sun_path);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    ::setenv("NOTIFY_SOCKET", path_.c_str(), 1);
  }
  ~FakeManager() {
    ::unsetenv("NOTIFY_SOCKET");
    ::unsetenv("WATCHDOG_USEC");
    ::unsetenv("WATCHDOG_PID");
    ::close(fd_);
  }
  /// The next datagram, if one is waiting.
  std::optional<std::string> receive() {
    char buf[4096];
    ssize_t n = ::recv(fd_, buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0) {
      return std::nullopt;
    }
    return std::string(buf, static_cast<std::size_t>(n));
  }

 private:
  tiertest::TempDir dir_;
  std::string path_;
  int fd_ = -1;
};

unsigned long long monotonic_usec() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<unsigned long long>(ts.tv_sec) * 1000000ULL +
         static_cast<unsigned long long>(ts.tv_nsec) / 1000ULL;
}

}  // namespace

TEST_CASE("notify: no-op without NOTIFY_SOCKET", "[systemd]") {
  ::unsetenv("NOTIFY_SOCKET");
  ::unsetenv("WATCHDOG_USEC");
  CHECK_FALSE(notify::enabled());
  CHECK_FALSE(notify::ready());
  CHECK_FALSE(notify::reloading());
  CHECK_FALSE(notify::stopping());
  CHECK_FALSE(notify::status("x"));
  CHECK_FALSE(notify::watchdog());
  CHECK(notify::watchdog_interval().count() == 0);
  tiertest::TestLoop loop;
  notify::Watchdog wd(loop.get());
  CHECK_FALSE(wd.start());
}

TEST_CASE("notify: messages reach the notification socket", "[systemd]") {
  FakeManager manager;
  REQUIRE(notify::enabled());

  REQUIRE(notify::ready());
  CHECK(manager.receive() == "READY=1");

  REQUIRE(notify::ready("serving 3 handlers"));
  CHECK(manager.receive() == "READY=1\nSTATUS=serving 3 handlers");

  auto before = monotonic_usec();
  REQUIRE(notify::reloading());
  auto after = monotonic_usec();
  auto msg = manager.receive();
  REQUIRE(msg);
  REQUIRE(msg->rfind("RELOADING=1\nMONOTONIC_USEC=", 0) == 0);
  auto usec = std::stoull(msg->substr(msg->find('=', 12) + 1));
  CHECK(usec >= before);
  CHECK(usec <= after);

  REQUIRE(notify::stopping());
  CHECK(manager.receive() == "STOPPING=1");

  // A status text cannot smuggle another assignment onto its own line.
  REQUIRE(notify::status("redis down\nREADY=1"));
  CHECK(manager.receive() == "STATUS=redis down READY=1");

  REQUIRE(notify::watchdog());
  CHECK(manager.receive() == "WATCHDOG=1");
  CHECK_FALSE(manager.receive());
}

TEST_CASE("notify: watchdog interval and the loop timer", "[systemd]") {
  FakeManager manager;
  ::setenv("WATCHDOG_USEC", "30000000", 1);
  CHECK(notify::watchdog_interval() == 30s);

  // WATCHDOG_PID names another process: the watchdog is not ours.
  ::setenv("WATCHDOG_PID", "1", 1);
  if (getpid() != 1) {
    CHECK(notify::watchdog_interval().count() == 0);
  }
  ::setenv("WATCHDOG_PID", std::to_string(getpid()).c_str(), 1);
  CHECK(notify::watchdog_interval() == 30s);

  // 100 ms interval: pings every 50 ms.
  ::setenv("WATCHDOG_USEC", "100000", 1);
  tiertest::TestLoop loop;
  int pings = 0;
  {
    notify::Watchdog wd(loop.get());
    REQUIRE(wd.start());
    CHECK_FALSE(wd.start());  // already running
    auto t0 = std::chrono::steady_clock::now();
    REQUIRE(loop.run_until(
        [&] {
          while (auto m = manager.receive()) {
            CHECK(*m == "WATCHDOG=1");
            ++pings;
          }
          return pings >= 4;
        },
        3s));
    // The first ping is immediate, then one per half interval: 4 pings take >= 150 ms.
    CHECK(std::chrono::steady_clock::now() - t0 >= 140ms);
    CHECK(wd.pings() >= 4);
    wd.stop();
    loop.run_until([] { return false; }, 150ms);
    while (manager.receive()) {
    }
    loop.run_until([] { return false; }, 150ms);
    CHECK_FALSE(manager.receive());  // stopped: no more pings
  }
  // A watchdog destroyed while running closes its timer safely.
  {
    notify::Watchdog wd(loop.get());
    REQUIRE(wd.start());
  }
  loop.run_until([] { return false; }, 50ms);

  ::setenv("WATCHDOG_USEC", "not-a-number", 1);
  CHECK(notify::watchdog_interval().count() == 0);
}
