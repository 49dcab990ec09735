// Cache GET/SET throughput through tier::Client, shaped like redis-benchmark so the two can
// be compared: C clients (one thread and one pooled connection each), N requests in total,
// keys drawn from a keyspace of R, values of D bytes, and P commands per round trip
// (P = 1: one op per round trip; P > 1: a tier::Pipeline of P cache ops).
// get/set go through tier::Cache (key checks, JSON encode/decode, hit counters); textget/textset
// through Cache::get_text/set_text (key checks, JSON validation without a DOM); rawget/rawset
// send the same GET/SET through the same Client as tier::raw ops, which isolates the
// transport's cost from the cache layer's.
//
//   core_cache_bench URL get|set|textget|textset|rawget|rawset CLIENTS REQUESTS PIPELINE
//   VALUE_BYTES KEYSPACE
// prints:  RESULT <op> c=<C> P=<P> <ops per second>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tier/cache.hpp"
#include "tier/sync/client.hpp"

namespace {

struct Params {
  std::string url;
  bool get = true;
  bool raw = false;
  bool text = false;
  int clients = 1;
  long requests = 100000;
  int pipeline = 1;
  int value_bytes = 64;
  int keyspace = 100000;
};

void worker(tier::Client& client, const tier::Cache& cache, const Params& p, long ops,
            unsigned seed, std::atomic<long>& failures) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> pick(0, p.keyspace - 1);
  // A JSON string whose serialized form is value_bytes long (the quotes count).
  tier::Json value = std::string(static_cast<std::size_t>(std::max(0, p.value_bytes - 2)), 'x');
  auto key = [&] { return cache.session("bench", "k" + std::to_string(pick(rng))); };
  std::string raw_value = value.dump();
  // The op for one request; `done` receives its outcome.
  auto add = [&](tier::Pipeline& pipe) {
    auto check = [&](bool ok) {
      if (!ok) {
        ++failures;
      }
    };
    if (p.raw) {
      std::string k = key().key;
      auto op =
          p.get ? tier::raw({"GET", std::move(k)}) : tier::raw({"SET", std::move(k), raw_value});
      pipe.add(std::move(op),
               [&](tier::Result<tier::Reply> r) { check(r.ok() && !r->is_error()); });
    } else if (p.text && p.get) {
      pipe.add(cache.get_text(key()),
               [&](tier::Result<std::optional<std::string>> r) { check(r.ok()); });
    } else if (p.text) {
      pipe.add(cache.set_text(key(), raw_value),
               [&](tier::Result<tier::Unit> r) { check(r.ok()); });
    } else if (p.get) {
      pipe.add(cache.get(key()), [&](tier::Result<std::optional<tier::Json>> r) { check(r.ok()); });
    } else {
      pipe.add(cache.set(key(), value), [&](tier::Result<tier::Unit> r) { check(r.ok()); });
    }
  };
  long done = 0;
  while (done < ops) {
    try {
      if (p.pipeline <= 1 && !p.raw) {
        if (p.text && p.get) {
          (void)client.run(cache.get_text(key()));
        } else if (p.text) {
          client.run(cache.set_text(key(), raw_value));
        } else if (p.get) {
          (void)client.run(cache.get(key()));
        } else {
          client.run(cache.set(key(), value));
        }
        ++done;
        continue;
      }
      tier::Pipeline pipe;
      long n = std::min<long>(std::max(p.pipeline, 1), ops - done);
      for (long i = 0; i < n; ++i) {
        add(pipe);
      }
      pipe.run(client);
      done += n;
    } catch (const std::exception& e) {
      ++failures;
      ++done;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 8) {
    std::fprintf(stderr,
                 "usage: %s URL get|set|textget|textset|rawget|rawset CLIENTS REQUESTS PIPELINE "
                 "VALUE_BYTES KEYSPACE\n",
                 argv[0]);
    return 2;
  }
  Params p;
  p.url = argv[1];
  std::string op = argv[2];
  p.get = op == "get" || op == "rawget" || op == "textget";
  p.raw = op.starts_with("raw");
  p.text = op.starts_with("text");
  p.clients = std::atoi(argv[3]);
  p.requests = std::atol(argv[4]);
  p.pipeline = std::atoi(argv[5]);
  p.value_bytes = std::atoi(argv[6]);
  p.keyspace = std::atoi(argv[7]);

  tier::ClientOptions o;
  o.endpoint = tier::RedisEndpoint::parse(p.url);
  o.pool_size = static_cast<std::size_t>(p.clients);
  tier::Client client(o);
  tier::Cache cache;
  // Open every pooled connection before the clock starts, as redis-benchmark does.
  {
    std::vector<std::thread> warm;
    for (int i = 0; i < p.clients; ++i) {
      warm.emplace_back([&] { client.run(tier::raw({"PING"})); });
    }
    for (auto& t : warm) {
      t.join();
    }
  }

  std::atomic<long> failures{0};
  std::vector<std::thread> threads;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < p.clients; ++i) {
    long share = p.requests / p.clients + (i < p.requests % p.clients ? 1 : 0);
    threads.emplace_back(worker, std::ref(client), std::cref(cache), std::cref(p), share,
                         static_cast<unsigned>(i + 1), std::ref(failures));
  }
  for (auto& t : threads) {
    t.join();
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (failures > 0) {
    std::fprintf(stderr, "%ld failed requests\n", failures.load());
    return 1;
  }
  std::printf("RESULT %s c=%d P=%d %.0f\n", op.c_str(), p.clients, p.pipeline,
              static_cast<double>(p.requests) / secs);
  return 0;
}
