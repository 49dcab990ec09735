#pragma once
// One write-behind stream entry (fields op, row, version; see writebehind.hpp) decoded into
// the row the worker writes to PostgreSQL. This is where the worker reads what applications
// put in the stream, so it stands apart from the loop and the connections: the fuzzer
// (tests/fuzz/fuzz_wb_row.cpp) calls it directly. Internal to the worker.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tier/writebehind.hpp"

namespace tierd::wb {

struct WriteBehindTable;

/// The columns of one table by index (sorted names), so that a row's column set is a bit
/// mask, not a map.
struct RowLayout {
  std::string table;           ///< the configured name, for error messages
  std::string version_column;  ///< empty = no version guard
  std::vector<std::string> colnames;
  std::unordered_map<std::string, int> colidx;
  /// json/jsonb columns (known once the worker has seen the live table): a string value is
  /// sent as JSON text, quotes included, instead of decoded.
  std::vector<bool> is_json;
  std::vector<int> key_idx;  ///< in key_columns order
  int version_idx = -1;
};

/// The layout of a table whose column names were checked (at most 64 of them); no column is
/// json yet.
RowLayout row_layout(const WriteBehindTable& cfg);

// A row's top-level members as raw JSON text, without building a DOM: the row is scanned
// once, nested objects and arrays are kept as they are (checked by a non-allocating parse),
// and only string values are decoded. Several times cheaper than parse + dump per row.
struct RawValue {
  enum class Kind { string, number, boolean, null, object, array } kind = Kind::null;
  std::string_view raw;  // for strings: with the quotes
};

/// A decoded entry: the row as the worker writes it.
struct Row {
  tier::WriteOp op = tier::WriteOp::upsert;
  std::vector<std::optional<std::string>> values;  ///< by column index; nullopt = NULL
  std::uint64_t mask = 0;                          ///< the columns the row carries
  std::optional<long long> version;
  std::string key;  ///< the coalescing key: each key column's value, length-prefixed
};

/// Vectors reused from one entry to the next: allocation dominated the worker's profile.
struct RowScratch {
  std::vector<std::pair<std::string, RawValue>> fields;
  std::vector<const RawValue*> by_col;
};

using Fields = std::vector<std::pair<std::string, std::string>>;

/// Decodes a stream entry's fields into `out` (default-constructed), for a table laid out as
/// `layout`. Returns why the entry is malformed (the dead letter's error), or nullopt.
std::optional<std::string> decode_row(const RowLayout& layout, const Fields& entry, Row& out,
                                      RowScratch& scratch);

}  // namespace tierd::wb
