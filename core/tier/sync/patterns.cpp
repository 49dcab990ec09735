#include "tier/sync/patterns.hpp"

#include <algorithm>
#include <atomic>
#include <future>

#include "tier/errors.hpp"

namespace tier {

namespace {

using Clock = std::chrono::steady_clock;
using ms = std::chrono::milliseconds;

Json parse_value(const std::string& text, const TierKey& key) {
  auto j = decode_json(text, key.key);
  if (!j.ok()) {
    throw DecodeError(j.error().message);
  }
  return std::move(j).value();
}

/// Runs the loader and stores its value; on failure releases the lease and rethrows.
Json load_and_store(Client& client, const CachePatterns& p, const TierKey& key,
                    const std::string& token, const Loader& loader, const AsideOptions& o) {
  const auto start = Clock::now();
  Json value;
  try {
    value = loader();
  } catch (...) {
    p.cache().count_event(key.tier, CacheEvent::load_failure);
    (void)client.try_run(p.release(key, token));
    throw;
  }
  const auto took = std::chrono::duration_cast<ms>(Clock::now() - start);
  auto text = p.cache().encode(value, key.key);
  if (!text.ok()) {
    p.cache().count_event(key.tier, CacheEvent::load_failure);
    (void)client.try_run(p.release(key, token));
    throw InvalidArgument(text.error().message);
  }
  client.run(p.store(key, token, std::move(text).value(), p.ttl_of(key, o.ttl), took));
  p.cache().count_event(key.tier, CacheEvent::load);
  return value;
}

}  // namespace

Json cache_aside(Client& client, const CachePatterns& p, const TierKey& key, const Loader& loader,
                 const AsideOptions& o) {
  const std::string token = CachePatterns::new_token();
  LookupOptions lo;
  lo.lease = o.lease;
  lo.beta = o.beta;
  const auto deadline = Clock::now() + o.wait;
  ms pause{5};
  bool counted_miss = false;
  for (;;) {
    Lookup l = client.run(p.lookup(key, token, lo));
    switch (l.kind) {
      case Lookup::Kind::hit:
        p.cache().count(key.tier, true);
        return parse_value(l.value, key);
      case Lookup::Kind::refresh: {
        // Early recomputation (XFetch): the old value stays served if it fails.
        p.cache().count(key.tier, true);
        p.cache().count_event(key.tier, CacheEvent::refresh);
        try {
          return load_and_store(client, p, key, token, loader, o);
        } catch (const std::exception&) {
          return parse_value(l.value, key);
        }
      }
      case Lookup::Kind::load:
        if (!counted_miss) {
          p.cache().count(key.tier, false);
        }
        return load_and_store(client, p, key, token, loader, o);
      case Lookup::Kind::wait:
        if (!counted_miss) {
          p.cache().count(key.tier, false);
          counted_miss = true;
        }
        if (Clock::now() >= deadline) {
          if (!o.load_on_timeout) {
            throw TimeoutError("cache_aside: '" + key.key + "' still loading elsewhere after " +
                               std::to_string(o.wait.count()) + " ms");
          }
          return load_and_store(client, p, key, token, loader, o);
        }
        // Polled with a short backoff: the loader's result is one lookup away.
        std::this_thread::sleep_for(
            std::min({pause, l.lease_left + ms(1),
                      std::chrono::duration_cast<ms>(deadline - Clock::now()) + ms(1)}));
        pause = std::min(pause * 2, ms(50));
        break;
    }
  }
}

void write_through(Client& client, const CachePatterns& p, const TierKey& key, const Json& value,
                   const std::function<void(const Json&)>& persist,
                   std::optional<std::chrono::seconds> ttl) {
  auto text = p.cache().encode(value, key.key);
  if (!text.ok()) {
    throw InvalidArgument(text.error().message);
  }
  persist(value);  // throws: the cache is left as it was
  client.run(p.store(key, "", std::move(text).value(), p.ttl_of(key, ttl), ms(0)));
}

std::size_t warm(Client& client, const CachePatterns& p, const std::vector<TierKey>& keys,
                 const std::function<std::vector<Json>(const std::vector<TierKey>&)>& loader,
                 std::size_t batch, std::size_t concurrency,
                 std::optional<std::chrono::seconds> ttl) {
  batch = std::max<std::size_t>(batch, 1);
  concurrency = std::max<std::size_t>(concurrency, 1);
  std::atomic<std::size_t> next{0};
  std::atomic<std::size_t> stored{0};
  auto work = [&] {
    for (;;) {
      const std::size_t from = next.fetch_add(batch);
      if (from >= keys.size()) {
        return;
      }
      const std::vector<TierKey> part(
          keys.begin() + static_cast<long>(from),
          keys.begin() + static_cast<long>(std::min(keys.size(), from + batch)));
      const auto start = Clock::now();
      std::vector<Json> values;
      try {
        values = loader(part);
      } catch (const std::exception&) {
        for (const auto& k : part) {
          p.cache().count_event(k.tier, CacheEvent::load_failure);
        }
        continue;
      }
      const auto took = std::chrono::duration_cast<ms>(Clock::now() - start);
      Pipeline pipe;
      std::size_t n = 0;
      for (std::size_t i = 0; i < part.size() && i < values.size(); ++i) {
        auto text = p.cache().encode(values[i], part[i].key);
        if (!text.ok()) {
          p.cache().count_event(part[i].tier, CacheEvent::load_failure);
          continue;
        }
        pipe.add(p.store(part[i], "", std::move(text).value(), p.ttl_of(part[i], ttl), took),
                 [&, tier = part[i].tier](Result<Unit> r) {
                   if (r.ok()) {
                     ++n;
                     p.cache().count_event(tier, CacheEvent::load);
                   } else {
                     p.cache().count_event(tier, CacheEvent::load_failure);
                   }
                 });
      }
      try {
        pipe.run(client);
      } catch (const std::exception&) {
        continue;
      }
      stored += n;
    }
  };
  std::vector<std::future<void>> workers;
  for (std::size_t i = 1; i < concurrency; ++i) {
    workers.push_back(std::async(std::launch::async, work));
  }
  work();
  for (auto& w : workers) {
    w.get();
  }
  return stored.load();
}

RefreshAhead::RefreshAhead(Client& client, const CachePatterns& patterns, std::size_t threads,
                           std::size_t queue)
    : client_(client), patterns_(patterns), queue_cap_(std::max<std::size_t>(queue, 1)) {
  for (std::size_t i = 0; i < std::max<std::size_t>(threads, 1); ++i) {
    threads_.emplace_back([this] { run(); });
  }
}

RefreshAhead::~RefreshAhead() {
  {
    std::lock_guard lock(m_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) {
    t.join();
  }
}

void RefreshAhead::run() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock lock(m_);
      cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) {
        return;  // stopping, and everything queued has run
      }
      job = std::move(jobs_.front());
      jobs_.pop_front();
      ++running_;
    }
    job();
    {
      std::lock_guard lock(m_);
      --running_;
    }
    idle_.notify_all();
  }
}

std::size_t RefreshAhead::pending() const {
  std::lock_guard lock(m_);
  return jobs_.size() + running_;
}

Json RefreshAhead::get(const TierKey& key, Loader loader, double refresh_ratio,
                       const AsideOptions& o) {
  const std::string token = CachePatterns::new_token();
  LookupOptions lo;
  lo.lease = o.lease;
  lo.beta = 0;  // refresh-ahead decides by the ratio alone
  lo.refresh_ratio = refresh_ratio;
  lo.full_ttl = patterns_.ttl_of(key, o.ttl);
  Lookup l = client_.run(patterns_.lookup(key, token, lo));
  if (l.kind != Lookup::Kind::refresh) {
    if (l.kind == Lookup::Kind::hit) {
      patterns_.cache().count(key.tier, true);
      return parse_value(l.value, key);
    }
    // A miss: an ordinary single-flight load (this caller may hold the lease already).
    if (l.kind == Lookup::Kind::load) {
      patterns_.cache().count(key.tier, false);
      return load_and_store(client_, patterns_, key, token, loader, o);
    }
    AsideOptions wait = o;
    wait.beta = 0;
    return cache_aside(client_, patterns_, key, loader, wait);
  }
  patterns_.cache().count(key.tier, true);
  Json current = parse_value(l.value, key);
  bool queued = false;
  {
    std::lock_guard lock(m_);
    if (!stopping_ && jobs_.size() < queue_cap_) {
      jobs_.push_back([this, key, token, loader = std::move(loader), o] {
        patterns_.cache().count_event(key.tier, CacheEvent::refresh);
        try {
          (void)load_and_store(client_, patterns_, key, token, loader, o);
        } catch (const std::exception&) {
          // The old value stays; load_and_store counted the failure and released the lease.
        }
      });
      queued = true;
    }
  }
  if (queued) {
    cv_.notify_one();
  } else {
    (void)client_.try_run(patterns_.release(key, token));  // the next read tries again
  }
  return current;
}

std::string write_behind(Client& client, const WriteBehind& wb, const CachePatterns& p,
                         const TierKey& key, const Json& value, std::string_view table,
                         const Json& row, std::optional<long long> version,
                         std::optional<std::chrono::seconds> ttl) {
  return client.run(wb.write_behind(p.cache(), key, value, ttl, table, row, version));
}

}  // namespace tier
