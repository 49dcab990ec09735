#include "tier/lock.hpp"

#include "tier/keys.hpp"
#include "tier/patterns.hpp"
#include "tier/script.hpp"

namespace tier {

namespace {

std::optional<Error> check_lock_name(std::string_view name) {
  return check_tagged_id(name, "lock name");
}

Result<std::pair<std::string, std::string>> keys_of(const Locks& locks, std::string_view name) {
  auto k = locks.key(name);
  if (!k.ok()) {
    return k.error();
  }
  return std::pair{*k, *k + ":fence"};
}

}  // namespace

Result<std::string> Locks::key(std::string_view name) const {
  if (auto bad = check_lock_name(name)) {
    return *bad;
  }
  return prefix_ + "lock:{" + std::string(name) + "}";
}

std::string Locks::release_channel(std::string_view name) const {
  return prefix_ + "lock:{" + std::string(name) + "}:released";
}

std::string Locks::new_token() {
  return CachePatterns::new_token();
}

Op<LockGrant> Locks::try_acquire(std::string_view name, const std::string& token,
                                 std::chrono::milliseconds lease) const {
  auto k = keys_of(*this, name);
  if (!k.ok()) {
    return Op<LockGrant>::fail(k.error());
  }
  if (lease.count() < 1) {
    return Op<LockGrant>::fail(Error{ErrorKind::invalid, "lock lease must be at least 1 ms"});
  }
  return single<LockGrant>(Command::eval(script("lock"), {k->first, k->second},
                                         {"acquire", token, std::to_string(lease.count())}),
                           [](Reply&& r) -> Result<LockGrant> {
                             if (!r.is_array() || r.elements.size() != 3) {
                               return reply_error(r, "lock script");
                             }
                             LockGrant g;
                             g.acquired = r.elements[0].integer == 1;
                             g.fence = r.elements[1].integer;
                             g.ttl = std::chrono::milliseconds(r.elements[2].integer);
                             return g;
                           });
}

Op<bool> Locks::extend(std::string_view name, const std::string& token,
                       std::chrono::milliseconds lease) const {
  auto k = keys_of(*this, name);
  if (!k.ok()) {
    return Op<bool>::fail(k.error());
  }
  return single<bool>(Command::eval(script("lock"), {k->first, k->second},
                                    {"extend", token, std::to_string(lease.count())}),
                      [](Reply&& r) -> Result<bool> {
                        if (!r.is_integer()) {
                          return reply_error(r, "lock script");
                        }
                        return r.integer == 1;
                      });
}

Op<bool> Locks::release(std::string_view name, const std::string& token) const {
  auto k = keys_of(*this, name);
  if (!k.ok()) {
    return Op<bool>::fail(k.error());
  }
  return single<bool>(Command::eval(script("lock"), {k->first, k->second},
                                    {"release", token, "0", release_channel(name)}),
                      [](Reply&& r) -> Result<bool> {
                        if (!r.is_integer()) {
                          return reply_error(r, "lock script");
                        }
                        return r.integer == 1;
                      });
}

Op<LockStatus> Locks::status(std::string_view name) const {
  auto k = keys_of(*this, name);
  if (!k.ok()) {
    return Op<LockStatus>::fail(k.error());
  }
  return single<LockStatus>(Command::eval(script("lock"), {k->first, k->second}, {"status"}),
                            [](Reply&& r) -> Result<LockStatus> {
                              if (!r.is_array() || r.elements.size() != 3) {
                                return reply_error(r, "lock script");
                              }
                              return LockStatus{r.elements[0].integer == 1,
                                                std::chrono::milliseconds(r.elements[1].integer),
                                                r.elements[2].integer};
                            });
}

}  // namespace tier
