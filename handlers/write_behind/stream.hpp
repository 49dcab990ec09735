#pragma once
// The write-behind worker's side of the stream contract (docs/contracts.md): its reads and
// group commands as ops, and the entries they decode to. No connection here: the worker
// runs these ops on the host's links, and the tests decode replies without a server.

#include <chrono>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tier/op.hpp"

namespace tierd::wb {

/// One stream entry as read by the worker.
struct Entry {
  std::string id;
  std::vector<std::pair<std::string, std::string>> fields;
  bool deleted = false;      ///< XDELed while pending (nil fields): acknowledge only
  bool redelivered = false;  ///< came from a pending read or a claim
};

/// XGROUP CREATE ... MKSTREAM from 0 (entries added before the first start count too); a
/// group that already exists is success.
tier::Op<tier::Unit> create_group(const std::string& stream, const std::string& group);

/// XREADGROUP of up to `count` entries after `cursor` ("0" and on: own pending entries,
/// marked redelivered; ">" new entries). `block` makes it a blocking read (its deadline
/// is extended past the block). A timeout of a blocking read is an empty result.
tier::Op<std::vector<Entry>> read_group(
    const std::string& stream, const std::string& group, const std::string& consumer,
    std::size_t count, const std::string& cursor,
    std::optional<std::chrono::milliseconds> block = std::nullopt);

struct Claimed {
  std::string next_cursor;  ///< "0-0" when the scan of the pending list is complete
  std::vector<Entry> entries;
};

/// XAUTOCLAIM of entries idle at least `min_idle` in the group, from `cursor`.
tier::Op<Claimed> auto_claim(const std::string& stream, const std::string& group,
                             const std::string& consumer, std::chrono::milliseconds min_idle,
                             const std::string& cursor, std::size_t count);

/// XPENDING (extended form) between two ids of one consumer: each entry's delivery count.
tier::Op<std::unordered_map<std::string, long long>> delivery_counts(const std::string& stream,
                                                                     const std::string& group,
                                                                     const std::string& consumer,
                                                                     const std::string& lo,
                                                                     const std::string& hi);

/// Decoders of the replies above, for tests and fuzzing: [[id, [f, v, ...] | nil], ...].
std::vector<Entry> decode_entries(tier::Reply&& list, bool redelivered);

}  // namespace tierd::wb
