// Lock commands through tier::Client, pipelined (P commands per round trip), beside
// redis-benchmark running the same script (core/lua/lock.lua) by EVALSHA.
//   lock_bench URL CLIENTS COMMANDS PIPELINE KEYSPACE MODE
//   MODE  acquire   acquire random names with the token "tok" (what redis-benchmark does)
//         release   release random names with the token "tok"
//         pair      acquire then release the same random name, each client its own token
//   prints: RESULT c=<C> P=<P> <MODE> <lock commands per second>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "tier/lock.hpp"
#include "tier/sync/client.hpp"

namespace {

enum class Mode { acquire, release, pair };

}  // namespace

int main(int argc, char** argv) {
  if (argc != 7) {
    std::fprintf(stderr, "usage: %s URL CLIENTS COMMANDS PIPELINE KEYSPACE acquire|release|pair\n",
                 argv[0]);
    return 2;
  }
  const std::string url = argv[1];
  const int clients = std::max(1, std::atoi(argv[2]));
  const long commands = std::atol(argv[3]);
  const int pipeline = std::max(2, std::atoi(argv[4]));
  const int keyspace = std::max(1, std::atoi(argv[5]));
  const std::string_view mode_name = argv[6];
  Mode mode = Mode::pair;
  if (mode_name == "acquire") {
    mode = Mode::acquire;
  } else if (mode_name == "release") {
    mode = Mode::release;
  } else if (mode_name != "pair") {
    std::fprintf(stderr, "lock_bench: unknown mode '%s'\n", argv[6]);
    return 2;
  }
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
  const tier::Locks locks("bench:");
  const auto lease = std::chrono::milliseconds(10000);
  std::atomic<long> failures{0};
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      std::mt19937 rng(static_cast<unsigned>(c + 1));
      std::uniform_int_distribution<int> pick(0, keyspace - 1);
      const std::string token = mode == Mode::pair ? tier::Locks::new_token() : "tok";
      const auto count = [&](auto r) {
        if (!r.ok()) {
          ++failures;
        }
      };
      const long mine = commands / clients;
      long done = 0;
      while (done < mine) {
        tier::Pipeline pipe;
        const long n = std::min<long>(pipeline, mine - done);
        for (long i = 0; i < n; ++i) {
          const std::string name = "l" + std::to_string(pick(rng));
          if (mode == Mode::release) {
            pipe.add(locks.release(name, token), count);
            continue;
          }
          pipe.add(locks.try_acquire(name, token, lease), count);
          if (mode == Mode::pair && i + 1 < n) {
            pipe.add(locks.release(name, token), count);
            ++i;
          }
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
  const long sent = commands / clients * clients;
  std::printf("RESULT c=%d P=%d %s %.0f\n", clients, pipeline, argv[6],
              static_cast<double>(sent) / secs);
  return 0;
}
