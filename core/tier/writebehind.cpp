#include "tier/writebehind.hpp"

#include <algorithm>

#include "tier/json_dump.hpp"
#include "tier/keys.hpp"

namespace tier {

const char* to_string(WriteOp op) noexcept {
  return op == WriteOp::upsert ? "upsert" : "delete";
}

std::optional<Error> check_table_name(std::string_view table) {
  auto bad = [&](const std::string& why) {
    return Error{ErrorKind::invalid, "table '" + excerpt(table) + "': " + why};
  };
  if (table.empty()) {
    return bad("must not be empty");
  }
  std::size_t part = 0;
  int dots = 0;
  for (std::size_t i = 0; i < table.size(); ++i) {
    char c = table[i];
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    bool digit = c >= '0' && c <= '9';
    if (c == '.') {
      if (part == 0 || ++dots > 1) {
        return bad("must be [schema.]name");
      }
      part = 0;
      continue;
    }
    if (!alpha && !digit) {
      return bad("only letters, digits, '_' and one '.' are allowed");
    }
    if (part == 0 && digit) {
      return bad("a name must not start with a digit");
    }
    if (++part > 63) {
      return bad("a name is longer than 63 bytes");
    }
  }
  if (part == 0) {
    return bad("must be [schema.]name");
  }
  return std::nullopt;
}

WriteBehind::WriteBehind(WriteBehindOptions options) : options_(std::move(options)) {}

std::string WriteBehind::stream(std::string_view table) const {
  return options_.prefix + "writebehind:" + std::string(table);
}

std::string WriteBehind::dead_stream(std::string_view table) const {
  return stream(table) + ":dead";
}

Result<std::string> WriteBehind::encode_row(std::string_view table, const Json& row) const {
  if (auto bad = check_table_name(table)) {
    return *bad;
  }
  if (!row.is_object()) {
    return Error{ErrorKind::invalid, "write-behind row for table '" + std::string(table) +
                                         "' must be a JSON object, not " + row.type_name()};
  }
  if (row.empty()) {
    return Error{ErrorKind::invalid,
                 "write-behind row for table '" + std::string(table) + "' is empty"};
  }
  std::string text;
  try {
    json::dump(row, text);
  } catch (const Json::exception& e) {
    return Error{ErrorKind::invalid,
                 "write-behind row for table '" + std::string(table) + "': " + e.what()};
  }
  if (options_.max_row_bytes != 0 && text.size() > options_.max_row_bytes) {
    return Error{ErrorKind::invalid, "write-behind row for table '" + std::string(table) + "' is " +
                                         std::to_string(text.size()) + " bytes, over the " +
                                         std::to_string(options_.max_row_bytes) + "-byte limit"};
  }
  return text;
}

namespace {
Result<std::string> decode_id(Reply&& r) {
  if (r.is_string() || r.type == Reply::Type::status) {
    return std::move(r.str);
  }
  return reply_error(r, "write-behind XADD");
}
}  // namespace

Op<std::string> WriteBehind::add(WriteOp op, std::string_view table, const Json& row,
                                 std::optional<long long> version) const {
  auto text = encode_row(table, row);
  if (!text.ok()) {
    return Op<std::string>::fail(text.error());
  }
  std::vector<std::string> args{"XADD", stream(table),          "*", "op", to_string(op),
                                "row",  std::move(text).value()};
  if (version) {
    args.emplace_back("version");
    args.push_back(std::to_string(*version));
  }
  return single<std::string>(Command::of(std::move(args)), decode_id);
}

Op<std::string> WriteBehind::enqueue(std::string_view table, const Json& row,
                                     std::optional<long long> version) const {
  return add(WriteOp::upsert, table, row, version);
}

Op<std::string> WriteBehind::enqueue_delete(std::string_view table, const Json& key_row,
                                            std::optional<long long> version) const {
  return add(WriteOp::del, table, key_row, version);
}

Op<std::string> WriteBehind::write_behind(const Cache& cache, const TierKey& cache_key,
                                          const Json& value,
                                          std::optional<std::chrono::seconds> ttl,
                                          std::string_view table, const Json& row,
                                          std::optional<long long> version) const {
  if (cache_key.invalid) {
    return Op<std::string>::fail(*cache_key.invalid);
  }
  if (ttl && ttl->count() <= 0) {
    return Op<std::string>::fail(
        Error{ErrorKind::invalid, "ttl for key '" + excerpt(cache_key.key) + "' must be positive"});
  }
  auto encoded = cache.encode(value, cache_key.key);
  if (!encoded.ok()) {
    return Op<std::string>::fail(encoded.error());
  }
  auto text = encode_row(table, row);
  if (!text.ok()) {
    return Op<std::string>::fail(text.error());
  }
  auto seconds = cache.effective_ttl(cache_key.tier, ttl);
  return single<std::string>(
      Command::eval(script("write_behind"), {cache_key.key, stream(table)},
                    {std::move(encoded).value(), std::to_string(seconds.count()), "upsert",
                     std::move(text).value(), version ? std::to_string(*version) : ""}),
      decode_id);
}

Op<WriteBehindStatus> WriteBehind::status(std::string_view table, std::string_view group) const {
  if (auto bad = check_table_name(table)) {
    return Op<WriteBehindStatus>::fail(*bad);
  }
  return single<WriteBehindStatus>(
      Command::eval(script("write_behind_status"), {stream(table), dead_stream(table)},
                    {std::string(group)}),
      [](Reply&& r) -> Result<WriteBehindStatus> {
        if (!r.is_array() || r.elements.size() < 5) {
          return reply_error(r, "write-behind status");
        }
        WriteBehindStatus s;
        s.length = r.elements[0].integer;
        s.pending = r.elements[1].integer;
        s.oldest_pending_age_ms = r.elements[2].integer;
        s.dead_letters = r.elements[3].integer;
        s.lag = r.elements[4].integer;
        return s;
      });
}

Op<std::vector<DeadLetter>> WriteBehind::dead_letters(std::string_view table,
                                                      std::size_t count) const {
  if (auto bad = check_table_name(table)) {
    return Op<std::vector<DeadLetter>>::fail(*bad);
  }
  return single<std::vector<DeadLetter>>(
      Command::of({"XRANGE", dead_stream(table), "-", "+", "COUNT",
                   std::to_string(std::max<std::size_t>(count, 1))}),
      [](Reply&& r) -> Result<std::vector<DeadLetter>> {
        if (!r.is_array()) {
          return reply_error(r, "write-behind dead letters");
        }
        std::vector<DeadLetter> out;
        for (auto& e : r.elements) {
          if (!e.is_array() || e.elements.size() < 2 || !e.elements[1].is_array()) {
            continue;
          }
          DeadLetter d;
          d.id = std::move(e.elements[0].str);
          auto& f = e.elements[1].elements;
          for (std::size_t i = 0; i + 1 < f.size(); i += 2) {
            if (f[i].str == "original_id") {
              d.original_id = std::move(f[i + 1].str);
            } else if (f[i].str == "error") {
              d.error = std::move(f[i + 1].str);
            } else {
              d.fields.emplace_back(std::move(f[i].str), std::move(f[i + 1].str));
            }
          }
          out.push_back(std::move(d));
        }
        return out;
      });
}

Op<long long> WriteBehind::replay(std::string_view table,
                                  const std::vector<std::string>& ids) const {
  if (auto bad = check_table_name(table)) {
    return Op<long long>::fail(*bad);
  }
  for (const auto& id : ids) {
    if (auto bad = check_id(id, "dead-letter id")) {
      return Op<long long>::fail(*bad);
    }
  }
  if (ids.empty()) {
    return Op<long long>::fail(Error{ErrorKind::invalid, "replay: no dead-letter id given"});
  }
  return single<long long>(
      Command::eval(script("write_behind_replay"), {dead_stream(table), stream(table)}, ids),
      [](Reply&& r) -> Result<long long> {
        if (!r.is_array() || r.elements.size() < 2) {
          return reply_error(r, "write-behind replay");
        }
        return r.elements[0].integer;
      });
}

}  // namespace tier
