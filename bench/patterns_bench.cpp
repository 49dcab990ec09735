// Cache patterns through tier::Client.
//   patterns_bench URL hit REQUESTS
//     the cache_aside hit path against a plain GET of a value of the same size, one client,
//     unpipelined; prints: HIT aside_us=<> get_us=<> ratio=<>
//   patterns_bench URL stampede READERS EXPIRIES
//     READERS threads read one hot key whose TTL is 1 s and whose loader takes 50 ms, for
//     EXPIRIES expiries, once with cache_aside and once naively (GET, on a miss load + SET);
//     prints: STAMPEDE readers=<> protected_loads_per_expiry=<> naive_loads_per_expiry=<>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "tier/patterns.hpp"
#include "tier/sync/patterns.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double per_op_us(Clock::time_point start, long n) {
  return std::chrono::duration<double, std::micro>(Clock::now() - start).count() /
         static_cast<double>(n);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s URL hit REQUESTS | URL stampede READERS EXPIRIES\n", argv[0]);
    return 2;
  }
  const std::string url = argv[1];
  const std::string mode = argv[2];
  tier::Cache cache({.prefix = "bench:"});
  tier::CachePatterns patterns(cache);
  const tier::Json value = std::string(62, 'x');  // 64 bytes of JSON, as the cache bench

  if (mode == "hit") {
    const long n = std::atol(argv[3]);
    tier::Client client(url);
    const auto key = cache.project("p1", "hot");
    const auto plain = cache.project("p1", "plain");
    client.run(cache.set(plain, value));
    (void)tier::cache_aside(client, patterns, key, [&] { return value; });
    tier::AsideOptions o;
    o.beta = 0;  // the hit path alone (XFetch never fires on a fresh 1 h entry anyway)
    double best_aside = 1e9;
    double best_get = 1e9;
    for (int round = 0; round < 3; ++round) {
      auto start = Clock::now();
      for (long i = 0; i < n; ++i) {
        (void)tier::cache_aside(
            client, patterns, key, [&] { return value; }, o);
      }
      best_aside = std::min(best_aside, per_op_us(start, n));
      start = Clock::now();
      for (long i = 0; i < n; ++i) {
        (void)client.run(cache.get(plain));
      }
      best_get = std::min(best_get, per_op_us(start, n));
    }
    std::printf("HIT aside_us=%.1f get_us=%.1f ratio=%.2f\n", best_aside, best_get,
                best_aside / best_get);
    return 0;
  }
  if (mode == "stampede" && argc == 5) {
    const int readers = std::atoi(argv[3]);
    const int expiries = std::atoi(argv[4]);
    auto run = [&](bool protect) {
      tier::Client client(tier::ClientOptions{.endpoint = tier::RedisEndpoint::parse(url),
                                              .pool_size = static_cast<std::size_t>(readers)});
      const auto key = cache.global("bench", protect ? "protected" : "naive", "hot");
      client.run(tier::raw({"DEL", key.key}));
      std::atomic<long> loads{0};
      auto loader = [&] {
        ++loads;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the expensive query
        return value;
      };
      const auto until = Clock::now() + std::chrono::seconds(expiries);
      std::vector<std::thread> threads;
      for (int r = 0; r < readers; ++r) {
        threads.emplace_back([&] {
          tier::AsideOptions o;
          o.ttl = std::chrono::seconds(1);
          o.beta = 0;  // expiry-driven: what a plain TTL does
          while (Clock::now() < until) {
            if (protect) {
              (void)tier::cache_aside(client, patterns, key, loader, o);
            } else if (!client.run(cache.get(key))) {
              client.run(cache.set(key, loader(), std::chrono::seconds(1)));
            }
          }
        });
      }
      for (auto& t : threads) {
        t.join();
      }
      return static_cast<double>(loads.load()) / expiries;
    };
    const double with = run(true);
    const double without = run(false);
    std::printf("STAMPEDE readers=%d protected_loads_per_expiry=%.2f naive_loads_per_expiry=%.2f\n",
                readers, with, without);
    return 0;
  }
  std::fprintf(stderr, "patterns_bench: bad arguments\n");
  return 2;
}
