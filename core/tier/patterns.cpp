#include "tier/patterns.hpp"

#include <cstdio>
#include <random>

#include "tier/json_check.hpp"
#include "tier/keys.hpp"
#include "tier/script.hpp"

namespace tier {

namespace {

std::string decimal(double x) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", x);
  return buf;
}

double uniform_draw() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  // (0, 1]: ln(rand) must be finite.
  return 1.0 - std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

}  // namespace

std::string CachePatterns::new_token() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  unsigned char bytes[16];
  for (int i = 0; i < 2; ++i) {
    const std::uint64_t x = rng();
    for (int b = 0; b < 8; ++b) {
      bytes[i * 8 + b] = static_cast<unsigned char>(x >> (8 * b));
    }
  }
  return to_hex(bytes, sizeof bytes);
}

std::chrono::milliseconds CachePatterns::ttl_of(const TierKey& key,
                                                std::optional<std::chrono::seconds> ttl) const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(cache_.effective_ttl(key.tier, ttl));
}

Op<Lookup> CachePatterns::lookup(const TierKey& key, const std::string& token,
                                 const LookupOptions& o) const {
  if (key.invalid) {
    return Op<Lookup>::fail(*key.invalid);
  }
  if (o.lease.count() < 1 || o.beta < 0 || o.refresh_ratio < 0 || o.refresh_ratio >= 1 ||
      (o.rand && !(*o.rand > 0 && *o.rand <= 1))) {
    return Op<Lookup>::fail(Error{ErrorKind::invalid,
                                  "cache lookup: lease >= 1 ms, beta >= 0, refresh_ratio in [0, 1) "
                                  "and rand in (0, 1] are required"});
  }
  Command cmd = Command::eval(script("cache_aside"), {key.key},
                              {"lookup", token, std::to_string(o.lease.count()), decimal(o.beta),
                               decimal(o.rand.value_or(uniform_draw())), decimal(o.refresh_ratio),
                               std::to_string(o.full_ttl.count())});
  return single<Lookup>(std::move(cmd), [k = key.key](Reply&& r) -> Result<Lookup> {
    if (!r.is_array() || r.elements.empty() || !r.elements[0].is_string()) {
      return reply_error(r, "cache lookup of '" + excerpt(k) + "'");
    }
    Lookup out;
    const std::string& kind = r.elements[0].str;
    if (kind == "hit" || kind == "refresh") {
      out.kind = kind == "hit" ? Lookup::Kind::hit : Lookup::Kind::refresh;
      if (r.elements.size() < 2) {
        return Error{ErrorKind::decode, "cache lookup of '" + excerpt(k) + "': no value"};
      }
      out.value = std::move(r.elements[1].str);
    } else if (kind == "load") {
      out.kind = Lookup::Kind::load;
    } else if (kind == "wait") {
      out.kind = Lookup::Kind::wait;
      if (r.elements.size() >= 2) {
        out.lease_left = std::chrono::milliseconds(std::atoll(r.elements[1].str.c_str()));
      }
    } else {
      return Error{ErrorKind::decode, "cache lookup of '" + excerpt(k) + "': unexpected " + kind};
    }
    return out;
  });
}

Op<Unit> CachePatterns::store(const TierKey& key, const std::string& token, std::string value_json,
                              std::chrono::milliseconds ttl,
                              std::chrono::milliseconds delta) const {
  if (key.invalid) {
    return Op<Unit>::fail(*key.invalid);
  }
  if (ttl.count() < 1) {
    return Op<Unit>::fail(Error{ErrorKind::invalid, "cache store: ttl must be at least 1 ms"});
  }
  const std::size_t cap = cache_.options().max_value_bytes;
  if (cap != 0 && value_json.size() > cap) {
    return Op<Unit>::fail(Error{ErrorKind::invalid, "value for '" + excerpt(key.key) + "' is " +
                                                        std::to_string(value_json.size()) +
                                                        " bytes, over max_value_bytes"});
  }
  if (const auto bad = json::check_value(value_json, 512); bad != json::Problem::none) {
    return Op<Unit>::fail(Error{
        ErrorKind::invalid,
        "value for '" + excerpt(key.key) + "' is not one JSON value (" + json::reason(bad) + ")"});
  }
  Command cmd = Command::eval(script("cache_aside"), {key.key},
                              {"store", token, std::move(value_json), std::to_string(ttl.count()),
                               std::to_string(std::max<std::int64_t>(0, delta.count()))});
  return single<Unit>(std::move(cmd), [k = key.key](Reply&& r) -> Result<Unit> {
    if (r.is_error()) {
      return reply_error(r, "cache store of '" + excerpt(k) + "'");
    }
    return Unit{};
  });
}

Op<bool> CachePatterns::release(const TierKey& key, const std::string& token) const {
  if (key.invalid) {
    return Op<bool>::fail(*key.invalid);
  }
  return single<bool>(Command::eval(script("cache_aside"), {key.key}, {"release", token}),
                      [k = key.key](Reply&& r) -> Result<bool> {
                        if (!r.is_integer()) {
                          return reply_error(r, "cache release of '" + excerpt(k) + "'");
                        }
                        return r.integer == 1;
                      });
}

}  // namespace tier
