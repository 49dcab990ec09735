#include "tier/cache.hpp"

#include <random>

#include "tier/json_check.hpp"
#include "tier/json_dump.hpp"
#include "tier/json_parse.hpp"
#include "tier/keys.hpp"

namespace tier {

namespace {
// Nesting accepted in cached values (nlohmann's DOM parser recurses per level).
constexpr std::size_t kMaxValueDepth = 512;
// What an encoded value's buffer starts at.
constexpr std::size_t kEncodeReserve = 128;
}  // namespace

const char* to_string(Tier t) noexcept {
  switch (t) {
    case Tier::session:
      return "session";
    case Tier::project:
      return "project";
    case Tier::global:
      return "global";
  }
  return "unknown";
}

std::optional<Tier> parse_tier(std::string_view s) noexcept {
  if (s == "session") {
    return Tier::session;
  }
  if (s == "project") {
    return Tier::project;
  }
  if (s == "global") {
    return Tier::global;
  }
  return std::nullopt;
}

namespace {

// The argv of a hot-path command, moved into place: a braced list would copy every
// string (initializer_list elements are const), the value included.
template <class... A>
std::vector<std::string> args_of(A&&... a) {
  std::vector<std::string> v;
  v.reserve(sizeof...(a));
  (v.emplace_back(std::forward<A>(a)), ...);
  return v;
}

}  // namespace

Result<Json> decode_json(const std::string& text, std::string_view key) {
  std::optional<Json> j = json::parse(text, kMaxValueDepth);
  if (!j) {
    return Error{ErrorKind::decode,
                 "value of key '" + excerpt(key) + "' is not JSON: '" + excerpt(text, 40) + "'"};
  }
  return std::move(*j);
}

Cache::Cache(CacheOptions options)
    : options_(std::move(options)), counters_(std::make_shared<Counters>()) {
  for (int i = 0; i < 3; ++i) {
    counters_->hits[i] = 0;
    counters_->misses[i] = 0;
    counters_->loads[i] = 0;
    counters_->refreshes[i] = 0;
    counters_->load_failures[i] = 0;
  }
}

TierKey Cache::make(Tier t, std::initializer_list<std::string_view> parts,
                    std::optional<Error> invalid) const {
  // Keys are built on every op: one allocation, no temporaries.
  std::size_t size = options_.prefix.size() + parts.size();
  for (auto p : parts) {
    size += p.size();
  }
  std::string key;
  key.reserve(size);
  key.append(options_.prefix);
  bool first = true;
  for (auto p : parts) {
    if (!first) {
      key.push_back(':');
    }
    first = false;
    key.append(p);
  }
  return TierKey{t, std::move(key), std::move(invalid)};
}

TierKey Cache::session(std::string_view session_id, std::string_view key) const {
  auto bad = check_id(session_id, "session_id");
  if (!bad) {
    bad = check_id(key, "key");
  }
  return make(Tier::session, {"session", session_id, key}, bad);
}

TierKey Cache::project(std::string_view project_id, std::string_view key) const {
  auto bad = check_id(project_id, "project_id");
  if (!bad) {
    bad = check_id(key, "key");
  }
  return make(Tier::project, {"project", project_id, key}, bad);
}

TierKey Cache::global(std::string_view type, std::string_view identifier,
                      std::string_view metric) const {
  auto bad = check_id(type, "type");
  if (!bad) {
    bad = check_id(identifier, "identifier");
  }
  if (!bad) {
    bad = check_id(metric, "metric");
  }
  return make(Tier::global, {type, identifier, metric}, bad);
}

std::chrono::seconds Cache::default_ttl(Tier t) const {
  switch (t) {
    case Tier::session:
      return options_.session_ttl;
    case Tier::project:
      return options_.project_ttl;
    case Tier::global:
      return options_.global_ttl;
  }
  return options_.global_ttl;
}

std::chrono::seconds Cache::effective_ttl(Tier t, std::optional<std::chrono::seconds> ttl) const {
  std::chrono::seconds base = ttl.value_or(default_ttl(t));
  if (options_.ttl_jitter <= 0.0 || base.count() <= 1) {
    return base;
  }
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uniform_real_distribution<double> dist(0.0, options_.ttl_jitter);
  auto extra = static_cast<long long>(static_cast<double>(base.count()) * dist(rng));
  return base + std::chrono::seconds{extra};
}

Result<std::string> Cache::encode(const Json& value, std::string_view key) const {
  std::string text;
  // Most cached values are small: one allocation instead of the string's doublings.
  text.reserve(kEncodeReserve);
  try {
    json::dump(value, text);
  } catch (const Json::exception& e) {
    return Error{ErrorKind::invalid, "value for key '" + excerpt(key) + "': " + e.what()};
  }
  if (options_.max_value_bytes != 0 && text.size() > options_.max_value_bytes) {
    return too_large(key, text.size());
  }
  return text;
}

Error Cache::too_large(std::string_view key, std::size_t bytes) const {
  return Error{ErrorKind::invalid, "value for key '" + excerpt(key) + "' is " +
                                       std::to_string(bytes) + " bytes, over the " +
                                       std::to_string(options_.max_value_bytes) + "-byte limit"};
}

Op<Unit> Cache::set(const TierKey& k, const Json& value,
                    std::optional<std::chrono::seconds> ttl) const {
  if (k.invalid) {
    return Op<Unit>::fail(*k.invalid);
  }
  auto text = encode(value, k.key);
  if (!text.ok()) {
    return Op<Unit>::fail(text.error());
  }
  return set_encoded(k, std::move(text).value(), ttl);
}

Op<Unit> Cache::set_text(const TierKey& k, std::string json_text,
                         std::optional<std::chrono::seconds> ttl) const {
  if (k.invalid) {
    return Op<Unit>::fail(*k.invalid);
  }
  if (options_.max_value_bytes != 0 && json_text.size() > options_.max_value_bytes) {
    return Op<Unit>::fail(too_large(k.key, json_text.size()));
  }
  if (auto problem = json::check_value(json_text, kMaxValueDepth); problem != json::Problem::none) {
    return Op<Unit>::fail(Error{
        ErrorKind::invalid,
        "value for key '" + excerpt(k.key) + "' is not JSON (" + json::reason(problem) + ")"});
  }
  return set_encoded(k, std::move(json_text), ttl);
}

Op<Unit> Cache::set_encoded(const TierKey& k, std::string text,
                            std::optional<std::chrono::seconds> ttl) const {
  if (ttl && ttl->count() <= 0) {
    return Op<Unit>::fail(
        Error{ErrorKind::invalid, "ttl for key '" + excerpt(k.key) + "' must be positive"});
  }
  auto t = effective_ttl(k.tier, ttl);
  return single<Unit>(
      Command::of(args_of("SET", k.key, std::move(text), "EX", std::to_string(t.count()))),
      [key = k.key](Reply&& r) -> Result<Unit> {
        // The error context is built only on the error path: this runs for every SET.
        if (r.type == Reply::Type::status) {
          return Unit{};
        }
        return reply_error(r, "SET " + excerpt(key));
      });
}

template <class T, class Decode>
Op<std::optional<T>> Cache::get_as(const TierKey& k, Decode decode) const {
  using R = std::optional<T>;
  if (k.invalid) {
    return Op<R>::fail(*k.invalid);
  }
  return single<R>(Command::of(args_of("GET", k.key)),
                   [key = k.key, tier = k.tier, c = counters_,
                    decode = std::move(decode)](Reply&& r) -> Result<R> {
                     auto i = static_cast<int>(tier);
                     if (r.is_nil()) {
                       ++c->misses[i];
                       return R{};
                     }
                     if (!r.is_string()) {
                       return reply_error(r, "GET " + excerpt(key));
                     }
                     ++c->hits[i];
                     Result<T> v = decode(std::move(r.str), key);
                     if (!v.ok()) {
                       return v.error();
                     }
                     return R{std::move(v).value()};
                   });
}

Op<std::optional<Json>> Cache::get(const TierKey& k) const {
  return get_as<Json>(
      k, [](std::string&& text, const std::string& key) { return decode_json(text, key); });
}

Op<std::optional<std::string>> Cache::get_text(const TierKey& k) const {
  return get_as<std::string>(
      k, [](std::string&& text, const std::string& key) -> Result<std::string> {
        if (auto problem = json::check_value(text, kMaxValueDepth);
            problem != json::Problem::none) {
          return Error{ErrorKind::decode, "value of key '" + excerpt(key) + "' is not JSON (" +
                                              json::reason(problem) + "): '" + excerpt(text, 40) +
                                              "'"};
        }
        return std::move(text);
      });
}

Op<bool> Cache::del(const TierKey& k) const {
  if (k.invalid) {
    return Op<bool>::fail(*k.invalid);
  }
  return single<bool>(Command::of({"UNLINK", k.key}), [key = k.key](Reply&& r) -> Result<bool> {
    auto n = decode_integer(std::move(r), "UNLINK " + excerpt(key));
    if (!n.ok()) {
      return n.error();
    }
    return *n > 0;
  });
}

Op<bool> Cache::exists(const TierKey& k) const {
  if (k.invalid) {
    return Op<bool>::fail(*k.invalid);
  }
  return single<bool>(Command::of({"EXISTS", k.key}), [key = k.key](Reply&& r) -> Result<bool> {
    auto n = decode_integer(std::move(r), "EXISTS " + excerpt(key));
    if (!n.ok()) {
      return n.error();
    }
    return *n > 0;
  });
}

Op<std::optional<std::chrono::seconds>> Cache::ttl(const TierKey& k) const {
  using T = std::optional<std::chrono::seconds>;
  if (k.invalid) {
    return Op<T>::fail(*k.invalid);
  }
  return single<T>(Command::of({"TTL", k.key}), [key = k.key](Reply&& r) -> Result<T> {
    auto n = decode_integer(std::move(r), "TTL " + excerpt(key));
    if (!n.ok()) {
      return n.error();
    }
    if (*n == -2) {
      return T{};
    }
    return T{std::chrono::seconds{*n}};
  });
}

Op<Unit> Cache::mset(const std::vector<BatchItem>& items) const {
  Op<Unit> op;
  op.commands.reserve(items.size());
  std::vector<std::string> keys;
  keys.reserve(items.size());
  for (const auto& item : items) {
    if (item.key.invalid) {
      return Op<Unit>::fail(*item.key.invalid);
    }
    if (item.ttl && item.ttl->count() <= 0) {
      return Op<Unit>::fail(Error{ErrorKind::invalid,
                                  "ttl for key '" + excerpt(item.key.key) + "' must be positive"});
    }
    auto text = encode(item.value, item.key.key);
    if (!text.ok()) {
      return Op<Unit>::fail(text.error());
    }
    auto t = effective_ttl(item.key.tier, item.ttl);
    op.commands.push_back(Command::of(
        {"SET", item.key.key, std::move(text).value(), "EX", std::to_string(t.count())}));
    keys.push_back(item.key.key);
  }
  op.decode = [keys = std::move(keys)](std::vector<Reply>&& replies) -> Result<Unit> {
    for (std::size_t i = 0; i < replies.size(); ++i) {
      if (auto r = decode_ok(std::move(replies[i]), "SET " + excerpt(keys[i])); !r.ok()) {
        return r.error();
      }
    }
    return Unit{};
  };
  return op;
}

Op<std::vector<std::optional<Json>>> Cache::mget(const std::vector<TierKey>& keys) const {
  using T = std::vector<std::optional<Json>>;
  if (keys.empty()) {
    Op<T> op;
    op.decode = [](std::vector<Reply>&&) -> Result<T> { return T{}; };
    return op;
  }
  std::vector<std::string> args{"MGET"};
  std::vector<std::pair<std::string, Tier>> meta;
  for (const auto& k : keys) {
    if (k.invalid) {
      return Op<T>::fail(*k.invalid);
    }
    args.push_back(k.key);
    meta.emplace_back(k.key, k.tier);
  }
  return single<T>(Command::of(std::move(args)),
                   [meta = std::move(meta), c = counters_](Reply&& r) -> Result<T> {
                     if (!r.is_array() || r.elements.size() != meta.size()) {
                       return reply_error(r, "MGET");
                     }
                     T out;
                     out.reserve(meta.size());
                     for (std::size_t i = 0; i < meta.size(); ++i) {
                       Reply& e = r.elements[i];
                       auto t = static_cast<int>(meta[i].second);
                       if (e.is_nil()) {
                         ++c->misses[t];
                         out.emplace_back();
                         continue;
                       }
                       ++c->hits[t];
                       auto j = decode_json(e.str, meta[i].first);
                       if (!j.ok()) {
                         return j.error();
                       }
                       out.emplace_back(std::move(j).value());
                     }
                     return out;
                   });
}

std::string Cache::session_pattern(std::string_view session_id) const {
  return glob_escape(options_.prefix) + "session:" + glob_escape(session_id) + ":*";
}

std::string Cache::project_pattern(std::string_view project_id) const {
  return glob_escape(options_.prefix) + "project:" + glob_escape(project_id) + ":*";
}

CacheStats Cache::stats() const {
  CacheStats s;
  for (int i = 0; i < 3; ++i) {
    s.hits[i] = counters_->hits[i].load();
    s.misses[i] = counters_->misses[i].load();
    s.loads[i] = counters_->loads[i].load();
    s.refreshes[i] = counters_->refreshes[i].load();
    s.load_failures[i] = counters_->load_failures[i].load();
  }
  return s;
}

void Cache::reset_stats() {
  for (int i = 0; i < 3; ++i) {
    counters_->hits[i] = 0;
    counters_->misses[i] = 0;
  }
}

void Cache::count(Tier t, bool hit) const {
  auto i = static_cast<int>(t);
  ++(hit ? counters_->hits[i] : counters_->misses[i]);
}

void Cache::count_event(Tier t, CacheEvent e) const {
  auto i = static_cast<int>(t);
  ++(e == CacheEvent::load      ? counters_->loads[i]
     : e == CacheEvent::refresh ? counters_->refreshes[i]
                                : counters_->load_failures[i]);
}

}  // namespace tier
