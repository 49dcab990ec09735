// Pattern deletion of a large keyspace while a probe measures how responsive Redis stays.
// The probe sends PING on its own connection every millisecond; a PING answered late means
// Redis was blocked (or its queue was long) at that moment.
//
//   core_delete_bench URL scan|keys|idle KEYS
//     scan: tier::delete_by_pattern (SCAN + UNLINK steps, core/lua/scan_unlink.lua)
//     keys: the common peer recipe, KEYS pattern then one DEL of everything found
//     idle: no deletion, the probe alone for 1.5 s: the latency floor of this machine
// The server must allow DEBUG POPULATE (redis-server --enable-debug-command yes).
// prints:  RESULT delete-<mode> keys=<n> deleted=<n> total_ms=<t> probe_worst_ms=<w>
//          probe_p99_ms=<p> probes=<n>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "tier/sync/client.hpp"
#include "tier/sync/scan_delete.hpp"
#include "tier/uv/scan_delete.hpp"

namespace {

using Clock = std::chrono::steady_clock;

class Probe {
 public:
  explicit Probe(const std::string& url) : client_(url) {
    client_.run(tier::raw({"PING"}));  // connected before measuring
    thread_ = std::thread([this] { loop(); });
  }
  ~Probe() { stop(); }

  void stop() {
    stop_ = true;
    if (thread_.joinable()) {
      thread_.join();
    }
  }
  std::vector<double>& latencies_ms() { return lat_; }

 private:
  void loop() {
    auto next = Clock::now();
    while (!stop_) {
      auto t0 = Clock::now();
      client_.run(tier::raw({"PING"}));
      lat_.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      next += std::chrono::milliseconds(1);
      // A late answer does not trigger a burst of catch-up probes.
      next = std::max(next, Clock::now());
      std::this_thread::sleep_until(next);
    }
  }

  tier::Client client_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::vector<double> lat_;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s URL scan|keys|idle KEYS\n", argv[0]);
    return 2;
  }
  std::string url = argv[1];
  std::string mode = argv[2];
  long n = std::atol(argv[3]);

  tier::ClientOptions o;
  o.endpoint = tier::RedisEndpoint::parse(url);
  o.command_timeout = std::chrono::milliseconds(120000);  // KEYS/DEL on 1M keys is slow
  tier::Client client(o);
  client.run(tier::raw({"FLUSHALL"}));
  auto populated = client.run(tier::raw({"DEBUG", "POPULATE", std::to_string(n), "key"}));
  if (populated.is_error()) {
    std::fprintf(stderr, "DEBUG POPULATE: %s\n", populated.str.c_str());
    return 1;
  }
  // A few keys that must survive: the pattern is not "everything".
  client.run(tier::raw({"MSET", "other:1", "x", "other:2", "x"}));

  std::uint64_t deleted = 0;
  Probe probe(url);
  auto start = Clock::now();
  if (mode == "idle") {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    deleted = static_cast<std::uint64_t>(n);
    client.run(tier::raw({"FLUSHALL"}));
    client.run(tier::raw({"MSET", "other:1", "x", "other:2", "x"}));
  } else if (mode == "scan") {
    deleted = tier::delete_by_pattern(client, "key:*", {.batch = 1000});
  } else {
    tier::Reply keys = client.run(tier::raw({"KEYS", "key:*"}));
    std::vector<std::string> del{"DEL"};
    del.reserve(keys.elements.size() + 1);
    for (auto& k : keys.elements) {
      del.push_back(std::move(k.str));
    }
    if (del.size() > 1) {
      deleted = static_cast<std::uint64_t>(client.run(tier::raw(std::move(del))).integer);
    }
  }
  double total_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  probe.stop();

  auto left = client.run(tier::raw({"DBSIZE"})).integer;
  if (left != 2) {
    std::fprintf(stderr, "expected 2 keys left, found %lld\n", left);
    return 1;
  }
  auto& lat = probe.latencies_ms();
  std::sort(lat.begin(), lat.end());
  double worst = lat.empty() ? 0 : lat.back();
  double p99 = lat.empty() ? 0 : lat[std::min(lat.size() - 1, lat.size() * 99 / 100)];
  std::printf(
      "RESULT delete-%s keys=%ld deleted=%llu total_ms=%.0f probe_worst_ms=%.2f "
      "probe_p99_ms=%.2f probes=%zu\n",
      mode.c_str(), n, static_cast<unsigned long long>(deleted), total_ms, worst, p99, lat.size());
  return 0;
}
