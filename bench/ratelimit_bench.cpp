// Rate-limit checks through tier::Client, shaped like redis-benchmark so the two can be
// compared on the same script (core/lua/ratelimit.lua by EVALSHA): C clients (one thread
// and one pooled connection each), N checks in total over a keyspace of R users, P checks
// per round trip (a tier::Pipeline); and the latency of unpipelined checks.
//
//   ratelimit_bench URL throughput ALGO CLIENTS REQUESTS PIPELINE KEYSPACE
//     prints: RESULT <algo> c=<C> P=<P> <checks per second>
//   ratelimit_bench URL latency ALGO REQUESTS
//     prints: LATENCY <algo> p50_us=<> p99_us=<> max_us=<>
// The limit is 1000000 per minute (burst the same): checks are allowed and write state, as
// in production, without ever being denied.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tier/ratelimit.hpp"
#include "tier/sync/client.hpp"

namespace {

using Clock = std::chrono::steady_clock;

tier::RateLimit limit_of(const std::string& algo) {
  auto a = tier::parse_rate_algorithm(algo);
  if (!a) {
    std::fprintf(stderr, "ratelimit_bench: unknown algorithm %s\n", algo.c_str());
    std::exit(2);
  }
  return {.algorithm = *a, .limit = 1000000, .window = std::chrono::milliseconds(60000)};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr,
                 "usage: %s URL throughput ALGO CLIENTS REQUESTS PIPELINE KEYSPACE\n"
                 "       %s URL latency ALGO REQUESTS\n",
                 argv[0], argv[0]);
    return 2;
  }
  const std::string url = argv[1];
  const std::string mode = argv[2];
  const std::string algo = argv[3];
  const tier::RateLimit limit = limit_of(algo);
  const tier::RateLimiter limiter;

  if (mode == "latency") {
    const long n = std::atol(argv[4]);
    tier::Client client(url);
    client.run(tier::raw({"PING"}));
    std::vector<double> us;
    us.reserve(static_cast<std::size_t>(n));
    for (long i = 0; i < n; ++i) {
      const auto start = Clock::now();
      (void)client.run(limiter.check("u" + std::to_string(i % 1000), limit));
      us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
    }
    std::sort(us.begin(), us.end());
    auto at = [&](double q) {
      return us[static_cast<std::size_t>(q * static_cast<double>(us.size() - 1))];
    };
    std::printf("LATENCY %s p50_us=%.1f p99_us=%.1f max_us=%.1f\n", algo.c_str(), at(0.5), at(0.99),
                us.back());
    return 0;
  }
  if (mode != "throughput" || argc != 8) {
    std::fprintf(stderr, "ratelimit_bench: bad arguments\n");
    return 2;
  }
  const int clients = std::atoi(argv[4]);
  const long requests = std::atol(argv[5]);
  const int pipeline = std::max(1, std::atoi(argv[6]));
  const int keyspace = std::max(1, std::atoi(argv[7]));

  tier::ClientOptions o;
  o.endpoint = tier::RedisEndpoint::parse(url);
  o.pool_size = static_cast<std::size_t>(clients);
  tier::Client client(o);
  {
    std::vector<std::thread> warm;  // every pooled connection open before the clock starts
    for (int i = 0; i < clients; ++i) {
      warm.emplace_back([&] { client.run(tier::raw({"PING"})); });
    }
    for (auto& t : warm) {
      t.join();
    }
  }
  std::atomic<long> failures{0};
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      std::mt19937 rng(static_cast<unsigned>(c + 1));
      std::uniform_int_distribution<int> pick(0, keyspace - 1);
      long done = 0;
      const long mine = requests / clients;
      while (done < mine) {
        tier::Pipeline pipe;
        const long n = std::min<long>(pipeline, mine - done);
        for (long i = 0; i < n; ++i) {
          pipe.add(limiter.check("u" + std::to_string(pick(rng)), limit),
                   [&](tier::Result<tier::RateResult> r) {
                     if (!r.ok() || !r->allowed) {
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
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  if (failures > 0) {
    std::fprintf(stderr, "ratelimit_bench: %ld checks failed or were denied\n", failures.load());
    return 1;
  }
  std::printf("RESULT %s c=%d P=%d %.0f\n", algo.c_str(), clients, pipeline,
              static_cast<double>(requests) / secs);
  return 0;
}
