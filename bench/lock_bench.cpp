// Lock acquire + release through tier::Client, pipelined (P commands per round trip), beside
// redis-benchmark running the same script (core/lua/lock.lua) by EVALSHA.
//   lock_bench URL CLIENTS PAIRS PIPELINE KEYSPACE
//   prints: RESULT c=<C> P=<P> <lock commands per second>  (acquires and releases, each one)

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tier/lock.hpp"
#include "tier/sync/client.hpp"

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: %s URL CLIENTS PAIRS PIPELINE KEYSPACE\n", argv[0]);
    return 2;
  }
  const std::string url = argv[1];
  const int clients = std::atoi(argv[2]);
  const long pairs = std::atol(argv[3]);
  const int pipeline = std::max(2, std::atoi(argv[4]));
  const int keyspace = std::max(1, std::atoi(argv[5]));
  tier::ClientOptions o;
  o.endpoint = tier::RedisEndpoint::parse(url);
  o.pool_size = static_cast<std::size_t>(clients);
  tier::Client client(o);
  const tier::Locks locks("bench:");
  std::atomic<long> failures{0};
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      std::mt19937 rng(static_cast<unsigned>(c + 1));
      std::uniform_int_distribution<int> pick(0, keyspace - 1);
      const std::string token = tier::Locks::new_token();
      long done = 0;
      const long mine = pairs / clients;
      while (done < mine) {
        tier::Pipeline pipe;
        const long n = std::min<long>(pipeline / 2, mine - done);
        for (long i = 0; i < n; ++i) {
          const std::string name = "l" + std::to_string(pick(rng));
          pipe.add(locks.try_acquire(name, token, std::chrono::milliseconds(10000)),
                   [&](tier::Result<tier::LockGrant> r) {
                     if (!r.ok()) {
                       ++failures;
                     }
                   });
          pipe.add(locks.release(name, token), [&](tier::Result<bool> r) {
            if (!r.ok()) {
              ++failures;
            }
          });
        }
        pipe.run(client);
        done += n;
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (failures > 0) {
    std::fprintf(stderr, "lock_bench: %ld commands failed\n", failures.load());
    return 1;
  }
  std::printf("RESULT c=%d P=%d %.0f\n", clients, pipeline,
              2.0 * static_cast<double>(pairs) / secs);
  return 0;
}
