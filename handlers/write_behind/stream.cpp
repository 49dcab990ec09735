#include "handlers/write_behind/stream.hpp"

#include <iterator>

namespace tierd::wb {

using namespace tier;

Op<Unit> create_group(const std::string& stream, const std::string& group) {
  return single<Unit>(Command::of({"XGROUP", "CREATE", stream, group, "0", "MKSTREAM"}),
                      [](Reply&& r) -> Result<Unit> {
                        if (r.is_error() && !r.str.starts_with("BUSYGROUP")) {
                          return reply_error(r, "XGROUP CREATE");
                        }
                        return Unit{};
                      });
}

std::vector<Entry> decode_entries(Reply&& list, bool redelivered) {
  std::vector<Entry> out;
  if (!list.is_array()) {
    return out;
  }
  out.reserve(list.elements.size());
  for (auto& e : list.elements) {
    if (!e.is_array() || e.elements.size() < 2 || !e.elements[0].is_string()) {
      continue;
    }
    Entry en;
    en.id = std::move(e.elements[0].str);
    en.redelivered = redelivered;
    Reply& f = e.elements[1];
    if (!f.is_array()) {
      en.deleted = true;
    } else {
      en.fields.reserve(f.elements.size() / 2);
      for (std::size_t i = 0; i + 1 < f.elements.size(); i += 2) {
        en.fields.emplace_back(std::move(f.elements[i].str), std::move(f.elements[i + 1].str));
      }
    }
    out.push_back(std::move(en));
  }
  return out;
}

Op<std::vector<Entry>> read_group(const std::string& stream, const std::string& group,
                                  const std::string& consumer, std::size_t count,
                                  const std::string& cursor,
                                  std::optional<std::chrono::milliseconds> block) {
  std::vector<std::string> args{"XREADGROUP", "GROUP", group,
                                consumer,     "COUNT", std::to_string(count)};
  if (block) {
    args.insert(args.end(), {"BLOCK", std::to_string(block->count())});
  }
  args.insert(args.end(), {"STREAMS", stream, cursor});
  const bool redelivered = cursor != ">";
  auto op = single<std::vector<Entry>>(
      Command::of(std::move(args)), [redelivered](Reply&& r) -> Result<std::vector<Entry>> {
        // nil: a blocking read timed out; else [[stream, entries]].
        if (r.is_nil()) {
          return std::vector<Entry>{};
        }
        if (!r.is_array()) {
          return reply_error(r, "XREADGROUP");
        }
        std::vector<Entry> out;
        for (auto& s : r.elements) {
          if (s.is_array() && s.elements.size() == 2) {
            auto part = decode_entries(std::move(s.elements[1]), redelivered);
            std::move(part.begin(), part.end(), std::back_inserter(out));
          }
        }
        return out;
      });
  if (block) {
    op.timeout = *block + std::chrono::milliseconds(5000);
  }
  return op;
}

Op<Claimed> auto_claim(const std::string& stream, const std::string& group,
                       const std::string& consumer, std::chrono::milliseconds min_idle,
                       const std::string& cursor, std::size_t count) {
  return single<Claimed>(
      Command::of({"XAUTOCLAIM", stream, group, consumer, std::to_string(min_idle.count()), cursor,
                   "COUNT", std::to_string(count)}),
      [](Reply&& r) -> Result<Claimed> {
        // [next_cursor, entries, deleted_ids] (Redis 7; 6.2 has no third element).
        if (!r.is_array() || r.elements.size() < 2 || !r.elements[0].is_string()) {
          return reply_error(r, "XAUTOCLAIM");
        }
        Claimed out;
        out.next_cursor = std::move(r.elements[0].str);
        out.entries = decode_entries(std::move(r.elements[1]), true);
        return out;
      });
}

Op<std::unordered_map<std::string, long long>> delivery_counts(const std::string& stream,
                                                               const std::string& group,
                                                               const std::string& consumer,
                                                               const std::string& lo,
                                                               const std::string& hi) {
  using Counts = std::unordered_map<std::string, long long>;
  return single<Counts>(
      Command::of({"XPENDING", stream, group, lo, hi, "100000", consumer}),
      [](Reply&& r) -> Result<Counts> {
        if (!r.is_array()) {
          return reply_error(r, "XPENDING");
        }
        Counts counts;
        for (auto& p : r.elements) {
          // [id, consumer, idle ms, deliveries]
          if (p.is_array() && p.elements.size() >= 4 && p.elements[3].is_integer()) {
            counts[std::move(p.elements[0].str)] = p.elements[3].integer;
          }
        }
        return counts;
      });
}

}  // namespace tierd::wb
