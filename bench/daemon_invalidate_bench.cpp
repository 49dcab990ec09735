// Pattern invalidation of a large keyspace by the real tierd, while probes measure how
// responsive Redis and tierd's loop stay. tierd must already run, subscribed to the same
// Redis, with an invalidate handler on system:cache_invalidation (bench/daemon_invalidate_run.sh
// sets all of this up).
//
//   daemon_invalidate_bench REDIS_URL HEALTHZ_HOST:PORT KEYS
//
// KEYS keys "inv:<n>" are created with DEBUG POPULATE (the server must allow it), plus
// 10,000 "keep:<n>" keys that must survive. Then one message is published:
//   PUBLISH system:cache_invalidation {"patterns":["inv:*"]}
// and DBSIZE is polled every 2 ms until only the keep keys are left (total time = from the
// PUBLISH to the first DBSIZE that shows them gone).
// Meanwhile, each on its own connection and thread:
//   redis probe    PING every millisecond; a late PONG means Redis was blocked or queued
//   healthz probe  GET /healthz every millisecond over one keep-alive connection; it is
//                  answered on tierd's loop, so a late answer means the loop was busy
// prints:  RESULT invalidate keys=<n> total_ms=<t> redis_worst_ms=<w> redis_p99_ms=<p>
//          redis_probes=<n> healthz_worst_ms=<w> healthz_p99_ms=<p> healthz_probes=<n>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tier/sync/client.hpp"

namespace {

using Clock = std::chrono::steady_clock;

constexpr long kKeep = 10000;

/// Runs `once` every millisecond on its own thread and records how long each call took.
/// A late answer does not trigger a burst of catch-up probes.
class Ticker {
 public:
  explicit Ticker(std::function<void()> once) : once_(std::move(once)) {}
  ~Ticker() { stop(); }
  void start() {
    thread_ = std::thread([this] { loop(); });
  }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) {
      thread_.join();
    }
  }
  /// Sorted latencies in milliseconds (call after stop()).
  std::vector<double>& sorted() {
    std::sort(lat_.begin(), lat_.end());
    return lat_;
  }

 private:
  void loop() {
    auto next = Clock::now();
    while (!stop_) {
      const auto t0 = Clock::now();
      once_();
      lat_.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      next += std::chrono::milliseconds(1);
      next = std::max(next, Clock::now());
      std::this_thread::sleep_until(next);
    }
  }

  std::function<void()> once_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::vector<double> lat_;
};

/// One keep-alive HTTP/1.1 connection to tierd; get() sends GET /healthz and reads the
/// whole answer ("ok\n").
class Healthz {
 public:
  explicit Healthz(const std::string& host_port) {
    const auto colon = host_port.rfind(':');
    if (colon == std::string::npos) {
      throw std::runtime_error("healthz: expected HOST:PORT");
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(std::atoi(host_port.c_str() + colon + 1)));
    if (inet_pton(AF_INET, host_port.substr(0, colon).c_str(), &addr.sin_addr) != 1) {
      throw std::runtime_error("healthz: bad IPv4 address");
    }
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0 || connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      throw std::runtime_error("healthz: cannot connect");
    }
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  ~Healthz() {
    if (fd_ >= 0) {
      close(fd_);
    }
  }
  Healthz(const Healthz&) = delete;
  Healthz& operator=(const Healthz&) = delete;

  void get() {
    static const std::string request = "GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n";
    if (send(fd_, request.data(), request.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(request.size())) {
      throw std::runtime_error("healthz: send failed");
    }
    std::string in;
    char buf[1024];
    while (in.find("\r\n\r\nok\n") == std::string::npos) {
      const ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) {
        throw std::runtime_error("healthz: connection closed");
      }
      in.append(buf, static_cast<std::size_t>(n));
    }
    if (in.rfind("HTTP/1.1 200", 0) != 0) {
      throw std::runtime_error("healthz: not 200: " + in.substr(0, 40));
    }
  }

 private:
  int fd_ = -1;
};

double p99(const std::vector<double>& v) {
  return v.empty() ? 0 : v[std::min(v.size() - 1, v.size() * 99 / 100)];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s REDIS_URL HEALTHZ_HOST:PORT KEYS\n", argv[0]);
    return 2;
  }
  const std::string url = argv[1];
  const long n = std::atol(argv[3]);
  try {
    tier::ClientOptions o;
    o.endpoint = tier::RedisEndpoint::parse(url);
    o.command_timeout = std::chrono::milliseconds(60000);  // DEBUG POPULATE of 1M keys
    tier::Client client(o);
    client.run(tier::raw({"FLUSHALL"}));
    for (auto [count, prefix] : {std::pair{n, "inv"}, std::pair{kKeep, "keep"}}) {
      auto r = client.run(tier::raw({"DEBUG", "POPULATE", std::to_string(count), prefix}));
      if (r.is_error()) {
        std::fprintf(stderr, "DEBUG POPULATE: %s\n", r.str.c_str());
        return 1;
      }
    }
    if (client.run(tier::raw({"DBSIZE"})).integer != n + kKeep) {
      std::fprintf(stderr, "populate: unexpected DBSIZE\n");
      return 1;
    }

    tier::Client probe_client(url);
    probe_client.run(tier::raw({"PING"}));  // connected before measuring
    Healthz healthz(argv[2]);
    healthz.get();
    Ticker redis_probe([&] { probe_client.run(tier::raw({"PING"})); });
    Ticker healthz_probe([&] { healthz.get(); });
    redis_probe.start();
    healthz_probe.start();

    const auto start = Clock::now();
    const auto receivers =
        client.run(tier::raw({"PUBLISH", "system:cache_invalidation", R"({"patterns":["inv:*"]})"}))
            .integer;
    if (receivers < 1) {
      std::fprintf(stderr, "PUBLISH: nobody subscribed (is tierd running?)\n");
      return 1;
    }
    long long left = n + kKeep;
    while (left > kKeep && Clock::now() - start < std::chrono::seconds(120)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      left = client.run(tier::raw({"DBSIZE"})).integer;
    }
    const double total_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    redis_probe.stop();
    healthz_probe.stop();

    if (left != kKeep) {
      std::fprintf(stderr, "expected %ld keys left, found %lld\n", kKeep, left);
      return 1;
    }
    if (client.run(tier::raw({"EXISTS", "keep:0", "keep:" + std::to_string(kKeep - 1)})).integer !=
        2) {
      std::fprintf(stderr, "a key outside the pattern was deleted\n");
      return 1;
    }
    auto& rl = redis_probe.sorted();
    auto& hl = healthz_probe.sorted();
    std::printf(
        "RESULT invalidate keys=%ld total_ms=%.0f redis_worst_ms=%.2f redis_p99_ms=%.2f "
        "redis_probes=%zu healthz_worst_ms=%.2f healthz_p99_ms=%.2f healthz_probes=%zu\n",
        n, total_ms, rl.empty() ? 0 : rl.back(), p99(rl), rl.size(), hl.empty() ? 0 : hl.back(),
        p99(hl), hl.size());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "daemon_invalidate_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
