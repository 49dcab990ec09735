// The write-behind entry decoder (tierd::wb::decode_row): what applications append to
// writebehind:{table} as fields op, row (a JSON object) and version. The decoder scans the
// row without building a DOM; here nlohmann's DOM is the reference for every verdict and
// every value it hands to PostgreSQL, for two table layouts (versioned with a composite key
// and a json column; unversioned with a single key).
//
// Input: one field per line, "name=value" (a line without '=' is a field with an empty
// value). Fields other than op, row and version are carried along, as in a real entry.

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "handlers/write_behind/row.hpp"
#include "handlers/write_behind/worker.hpp"

namespace {

using Json = nlohmann::json;
using tierd::wb::Fields;
using tierd::wb::Row;
using tierd::wb::RowLayout;

// The worker's nesting limit for a row: the object plus 64 levels inside it.
constexpr std::size_t kMaxRowDepth = 65;

[[noreturn]] void finding(const char* what, const std::string& detail = {}) {
  std::fprintf(stderr, "fuzz_wb_row: %s\n", what);
  if (!detail.empty()) {
    std::fprintf(stderr, "  %s\n", detail.c_str());
  }
  std::abort();
}

void require(bool ok, const char* what, const std::string& detail = {}) {
  if (!ok) {
    finding(what, detail);
  }
}

bool starts_with(const std::string& s, std::string_view prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

RowLayout layout(std::string name, std::vector<std::string> keys, std::vector<std::string> cols,
                 std::string version, const std::vector<std::string>& json_cols) {
  tierd::wb::WriteBehindTable t;
  t.name = std::move(name);
  t.key_columns = std::move(keys);
  t.columns = std::move(cols);
  t.version_column = std::move(version);
  RowLayout l = tierd::wb::row_layout(t);
  for (const auto& c : json_cols) {
    l.is_json[static_cast<std::size_t>(l.colidx.at(c))] = true;
  }
  return l;
}

const std::vector<RowLayout>& layouts() {
  static const std::vector<RowLayout> all{
      // scripts/demo_schema.sql's analysis_results, as in tierd.example.yaml.
      layout("analysis_results", {"project_id", "code_hash"}, {"result", "updated_at"}, "version",
             {"result"}),
      layout("items", {"id"}, {"name", "payload", "n"}, "", {"payload"}),
  };
  return all;
}

// Brackets outside strings in a text nlohmann accepted.
std::size_t depth_of(std::string_view text) {
  std::size_t depth = 0;
  std::size_t deepest = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      deepest = std::max(deepest, ++depth);
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return deepest;
}

// An integer as the version field must be written: optional '-', digits (leading zeros
// too, however many), within long long.
std::optional<long long> integer(const std::string& s) {
  if (s.empty()) {
    return std::nullopt;
  }
  const std::size_t start = s[0] == '-' ? 1 : 0;
  if (start == s.size() || s.find_first_not_of("0123456789", start) != std::string::npos) {
    return std::nullopt;
  }
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno == ERANGE) {
    return std::nullopt;
  }
  return v;
}

const char* json_type(const Json& j) {
  if (j.is_array()) {
    return "array";
  }
  if (j.is_string()) {
    return "string";
  }
  if (j.is_boolean()) {
    return "boolean";
  }
  if (j.is_null()) {
    return "null";
  }
  return "number";
}

// The value a column must get for DOM value `v`.
void check_value(const RowLayout& l, std::size_t col, const Json& v,
                 const std::optional<std::string>& got) {
  const std::string& name = l.colnames[col];
  if (v.is_null()) {
    require(!got.has_value(), "null column is not NULL", name);
    return;
  }
  require(got.has_value(), "column with a value is NULL", name);
  if (v.is_string() && !l.is_json[col]) {
    require(*got == v.get_ref<const std::string&>(), "text column differs from the JSON string",
            name);
    return;
  }
  // Everything else goes as JSON text: it must be the value the DOM holds.
  const Json parsed = Json::parse(*got, nullptr, false);
  require(!parsed.is_discarded() && parsed == v, "JSON text of a column differs from the DOM",
          name + ": " + *got);
}

// A decoded entry's coalescing key, and the key column values it stands for.
struct Decoded {
  std::string key;
  std::vector<std::string> values;
};

std::optional<Decoded> run(const RowLayout& l, const Fields& fields) {
  Row row;
  tierd::wb::RowScratch scratch;
  const auto error = tierd::wb::decode_row(l, fields, row, scratch);

  // The fields the decoder reads; the last one wins when a name repeats.
  const std::string* op = nullptr;
  const std::string* text = nullptr;
  const std::string* version = nullptr;
  for (const auto& [k, v] : fields) {
    if (k == "op") {
      op = &v;
    } else if (k == "row") {
      text = &v;
    } else if (k == "version") {
      version = &v;
    }
  }

  // The verdicts, in the decoder's order.
  if (op == nullptr) {
    require(error && *error == "missing field 'op'", "no op, but no 'missing op'");
    return std::nullopt;
  }
  if (*op != "upsert" && *op != "delete") {
    require(error && starts_with(*error, "bad op"), "bad op accepted");
    return std::nullopt;
  }
  if (text == nullptr) {
    require(error && *error == "missing field 'row'", "no row, but no 'missing row'");
    return std::nullopt;
  }
  const Json dom = Json::parse(*text, nullptr, false);
  if (dom.is_discarded() || text->find('\0') != std::string::npos ||
      depth_of(*text) > kMaxRowDepth) {
    require(error && starts_with(*error, "row is not JSON"), "a row that is not JSON passed",
            error.value_or("(accepted)"));
    return std::nullopt;
  }
  require(!error || !starts_with(*error, "row is not JSON"), "a JSON row was refused",
          error.value_or(""));
  if (!dom.is_object()) {
    require(error && *error == std::string("row is a JSON ") + json_type(dom) + ", not an object",
            "a non-object row passed or was named wrongly", error.value_or("(accepted)"));
    return std::nullopt;
  }
  std::optional<long long> v;
  if (version != nullptr) {
    v = integer(*version);
    if (!v) {
      require(error && starts_with(*error, "version '"), "a bad version passed");
      return std::nullopt;
    }
  }
  for (const auto& [key, value] : dom.items()) {
    if (l.colidx.count(key) == 0) {
      require(error && starts_with(*error, "column '"), "a column off the whitelist passed", key);
      return std::nullopt;
    }
  }
  if (!l.version_column.empty()) {
    const auto it = dom.find(l.version_column);
    // A version column that is an integer number within long long (nlohmann keeps a
    // larger one as unsigned).
    if (!v && it != dom.end() && it->is_number_integer() &&
        (!it->is_number_unsigned() ||
         it->get<std::uint64_t>() <= static_cast<std::uint64_t>(LLONG_MAX))) {
      v = it->get<long long>();
    }
    if (!v) {
      require(error && starts_with(*error, "no version"), "a row without a version passed",
              error.value_or("(accepted)"));
      return std::nullopt;
    }
  }
  for (int k : l.key_idx) {
    const auto it = dom.find(l.colnames[static_cast<std::size_t>(k)]);
    if (it == dom.end() || it->is_null()) {
      require(error && (starts_with(*error, "row lacks key column") ||
                        starts_with(*error, "key column")),
              "a row without its key passed");
      return std::nullopt;
    }
  }
  require(!error, "a well-formed entry was refused", error.value_or(""));

  // What goes to PostgreSQL.
  require(row.op == (*op == "upsert" ? tier::WriteOp::upsert : tier::WriteOp::del), "wrong op");
  require(row.version == v, "wrong version");
  require(row.values.size() == l.colnames.size(), "values not sized by the layout");
  for (std::size_t i = 0; i < l.colnames.size(); ++i) {
    const bool key =
        std::find(l.key_idx.begin(), l.key_idx.end(), static_cast<int>(i)) != l.key_idx.end();
    const bool carried = (row.mask >> i) & 1U;
    if (static_cast<int>(i) == l.version_idx) {
      require(carried && row.values[i] == std::to_string(*v), "version column not the version");
      continue;
    }
    const auto it = dom.find(l.colnames[i]);
    const bool expected = it != dom.end() && (row.op == tier::WriteOp::upsert || key);
    require(carried == expected, "column mask differs from the row", l.colnames[i]);
    if (expected) {
      check_value(l, i, *it, row.values[i]);
    }
  }
  require((row.mask >> l.colnames.size()) == 0, "mask bits past the columns");

  std::vector<std::string> key_values;
  for (int k : l.key_idx) {
    key_values.push_back(row.values[static_cast<std::size_t>(k)].value_or(""));
  }
  return Decoded{row.key, key_values};
}

Fields split_fields(std::string_view in) {
  Fields out;
  while (!in.empty()) {
    const auto nl = in.find('\n');
    const std::string_view line = in.substr(0, nl);
    const auto eq = line.find('=');
    if (eq == std::string_view::npos) {
      out.emplace_back(std::string(line), std::string());
    } else {
      out.emplace_back(std::string(line.substr(0, eq)), std::string(line.substr(eq + 1)));
    }
    if (nl == std::string_view::npos) {
      break;
    }
    in.remove_prefix(nl + 1);
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // Entries are separated by an empty line; all of them form one batch.
  std::vector<Fields> batch;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  while (true) {
    const auto gap = in.find("\n\n");
    batch.push_back(split_fields(in.substr(0, gap)));
    if (gap == std::string_view::npos || batch.size() == 8) {
      break;
    }
    in.remove_prefix(gap + 2);
  }
  for (const auto& l : layouts()) {
    std::vector<Decoded> decoded;
    for (const auto& fields : batch) {
      if (auto d = run(l, fields)) {
        decoded.push_back(std::move(*d));
      }
    }
    // The worker folds the entries of a batch that share a coalescing key into one row (the
    // newest wins, the others are acknowledged): entries whose key columns differ must never
    // share it, or a row would be acknowledged and never written.
    for (std::size_t i = 0; i < decoded.size(); ++i) {
      for (std::size_t j = i + 1; j < decoded.size(); ++j) {
        require((decoded[i].key == decoded[j].key) == (decoded[i].values == decoded[j].values),
                "two different keys share a coalescing key (or one key got two)",
                l.table + ": '" + decoded[i].key + "' / '" + decoded[j].key + "'");
      }
    }
  }
  return 0;
}
