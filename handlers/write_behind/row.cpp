#include "handlers/write_behind/row.hpp"

#include "tier/numbers.hpp"

#include <algorithm>
#include <set>

#include "handlers/write_behind/worker.hpp"
#include "tier/json_check.hpp"
#include "tier/keys.hpp"

namespace tierd::wb {

using namespace tier;

namespace {

std::optional<long long> parse_int(const std::string& s) {
  return tier::parse_integer<long long>(s);
}

void skip_ws(std::string_view s, std::size_t& i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) {
    ++i;
  }
}

// Position after the closing quote of the string starting at s[i] == '"', or npos.
std::size_t string_end(std::string_view s, std::size_t i) {
  for (++i; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '\\') {
      ++i;
    } else if (c == '"') {
      return i + 1;
    } else if (c < 0x20) {
      return std::string_view::npos;
    }
  }
  return std::string_view::npos;
}

// Nesting accepted in a row: the row object plus 64 levels inside it.
constexpr std::size_t kMaxRowDepth = 65;

// Position after the object or array starting at s[i] (in text tier::json accepted).
std::size_t nested_end(std::string_view s, std::size_t i) {
  int depth = 0;
  for (; i < s.size(); ++i) {
    char c = s[i];
    if (c == '"') {
      i = string_end(s, i);
      if (i == std::string_view::npos) {
        return i;
      }
      --i;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      if (--depth == 0) {
        return i + 1;
      }
    }
  }
  return std::string_view::npos;
}

// Scans `row`; on success fills `out` (key -> raw value, in document order) and returns
// nullopt, else the error for the dead letter. One strict pass (tier::json) decides whether
// the row is JSON at all, so the scan itself only has to find where values start and end.
std::optional<std::string> scan_row(std::string_view row,
                                    std::vector<std::pair<std::string, RawValue>>& out) {
  if (json::check_value(row, kMaxRowDepth) != json::Problem::none) {
    return "row is not JSON: '" + excerpt(row, 60) + "'";
  }
  std::size_t i = 0;
  if (row.starts_with("\xEF\xBB\xBF")) {
    i = 3;  // a UTF-8 byte order mark, which JSON allows
  }
  skip_ws(row, i);
  if (row[i] != '{') {
    const char* type = "number";
    char c = row[i];
    if (c == '[') {
      type = "array";
    } else if (c == '"') {
      type = "string";
    } else if (c == 't' || c == 'f') {
      type = "boolean";
    } else if (c == 'n') {
      type = "null";
    }
    return std::string("row is a JSON ") + type + ", not an object";
  }
  ++i;
  skip_ws(row, i);
  while (row[i] != '}') {
    // At a key: "key" ws : ws value ws (, or })
    std::size_t kend = string_end(row, i);
    std::string key = json::unescape(row.substr(i + 1, kend - i - 2));
    i = kend;
    skip_ws(row, i);
    ++i;  // ':'
    skip_ws(row, i);
    RawValue v;
    std::size_t start = i;
    char c = row[i];
    if (c == '"') {
      i = string_end(row, i);
      v.kind = RawValue::Kind::string;
    } else if (c == '{' || c == '[') {
      i = nested_end(row, i);
      v.kind = c == '{' ? RawValue::Kind::object : RawValue::Kind::array;
    } else if (c == 't' || c == 'n') {
      v.kind = c == 't' ? RawValue::Kind::boolean : RawValue::Kind::null;
      i += 4;
    } else if (c == 'f') {
      v.kind = RawValue::Kind::boolean;
      i += 5;
    } else {
      while (i < row.size() &&
             std::string_view("+-0123456789.eE").find(row[i]) != std::string_view::npos) {
        ++i;
      }
      v.kind = RawValue::Kind::number;
    }
    v.raw = row.substr(start, i - start);
    out.emplace_back(std::move(key), v);
    skip_ws(row, i);
    if (row[i] == ',') {
      ++i;
      skip_ws(row, i);
    }
  }
  return std::nullopt;
}

// The text sent to PostgreSQL for a raw value; nullopt for null.
std::optional<std::string> raw_to_text(const RawValue& v, bool json_column) {
  switch (v.kind) {
    case RawValue::Kind::null:
      return std::nullopt;
    case RawValue::Kind::string:
      if (json_column) {
        return std::string(v.raw);
      }
      return json::unescape(v.raw.substr(1, v.raw.size() - 2));
    default:
      return std::string(v.raw);
  }
}

}  // namespace

RowLayout row_layout(const WriteBehindTable& cfg) {
  RowLayout l;
  l.table = cfg.name;
  l.version_column = cfg.version_column;
  std::set<std::string> names(cfg.key_columns.begin(), cfg.key_columns.end());
  names.insert(cfg.columns.begin(), cfg.columns.end());
  if (!cfg.version_column.empty()) {
    names.insert(cfg.version_column);
  }
  l.colnames.assign(names.begin(), names.end());
  for (std::size_t i = 0; i < l.colnames.size(); ++i) {
    l.colidx[l.colnames[i]] = static_cast<int>(i);
  }
  l.is_json.assign(l.colnames.size(), false);
  for (const auto& k : cfg.key_columns) {
    l.key_idx.push_back(l.colidx[k]);
  }
  if (!cfg.version_column.empty()) {
    l.version_idx = l.colidx[cfg.version_column];
  }
  return l;
}

std::optional<std::string> decode_row(const RowLayout& layout, const Fields& entry, Row& out,
                                      RowScratch& scratch) {
  const std::string* op = nullptr;
  const std::string* row = nullptr;
  const std::string* version = nullptr;
  for (const auto& [k, v] : entry) {
    if (k == "op") {
      op = &v;
    } else if (k == "row") {
      row = &v;
    } else if (k == "version") {
      version = &v;
    }
  }
  if (op == nullptr) {
    return "missing field 'op'";
  }
  if (*op == "upsert") {
    out.op = WriteOp::upsert;
  } else if (*op == "delete") {
    out.op = WriteOp::del;
  } else {
    return "bad op '" + excerpt(*op, 40) + "' (expected upsert or delete)";
  }
  if (row == nullptr) {
    return "missing field 'row'";
  }
  // Scratch vectors reused across rows: allocation dominated the profile.
  auto& fields = scratch.fields;
  fields.clear();
  if (auto bad = scan_row(*row, fields)) {
    return bad;
  }
  if (version != nullptr) {
    out.version = parse_int(*version);
    if (!out.version) {
      return "version '" + excerpt(*version, 40) + "' is not an integer";
    }
  }
  out.values.resize(layout.colnames.size());
  auto& by_col = scratch.by_col;
  by_col.assign(layout.colnames.size(), nullptr);
  for (const auto& [key, v] : fields) {
    auto ci = layout.colidx.find(key);
    if (ci == layout.colidx.end()) {
      return "column '" + excerpt(key, 63) + "' is not whitelisted for table " + layout.table;
    }
    by_col[static_cast<std::size_t>(ci->second)] = &v;
  }
  const auto& vc = layout.version_column;
  if (!vc.empty()) {
    const RawValue* rv = by_col[static_cast<std::size_t>(layout.version_idx)];
    if (!out.version && rv != nullptr && rv->kind == RawValue::Kind::number) {
      out.version = parse_int(std::string(rv->raw));
    }
    if (!out.version) {
      return "no version: table " + layout.table + " needs field 'version' or column '" + vc + "'";
    }
  }
  for (int k : layout.key_idx) {
    const RawValue* rv = by_col[static_cast<std::size_t>(k)];
    const std::string& name = layout.colnames[static_cast<std::size_t>(k)];
    if (rv == nullptr) {
      return "row lacks key column '" + name + "'";
    }
    if (rv->kind == RawValue::Kind::null) {
      return "key column '" + name + "' is null";
    }
  }
  for (std::size_t i = 0; i < by_col.size(); ++i) {
    bool key = std::find(layout.key_idx.begin(), layout.key_idx.end(), static_cast<int>(i)) !=
               layout.key_idx.end();
    if (by_col[i] == nullptr || (out.op == WriteOp::del && !key)) {
      continue;
    }
    out.values[i] = raw_to_text(*by_col[i], layout.is_json[i]);
    out.mask |= 1ULL << i;
  }
  if (layout.version_idx >= 0) {
    out.values[static_cast<std::size_t>(layout.version_idx)] = std::to_string(*out.version);
    out.mask |= 1ULL << layout.version_idx;
  }
  // Each value length-prefixed: a separator byte alone would let ("a\x1f", "b") and
  // ("a", "\x1fb") share a key, and the worker would fold two rows into one.
  for (int k : layout.key_idx) {
    const std::string& v = *out.values[static_cast<std::size_t>(k)];
    out.key += std::to_string(v.size());
    out.key += ':';
    out.key += v;
  }
  return std::nullopt;
}

}  // namespace tierd::wb
