#include "handlers/write_behind/plan.hpp"

#include <algorithm>
#include <iterator>
#include <set>

#include "handlers/write_behind/worker.hpp"
#include "tier/json_check.hpp"
#include "tier/writebehind.hpp"

namespace tierd::wb {

using namespace tier;

namespace {

std::optional<std::string> bad_column(const std::string& col) {
  if (col.empty() || col.size() > 63 || col.find('\0') != std::string::npos ||
      !json::valid_utf8(col)) {
    return "column name '" + col.substr(0, 80) +
           "' is not valid (1 to 63 bytes of UTF-8 without NUL)";
  }
  return std::nullopt;
}

std::string tombstone_key(const SqlTable& t, const std::string& alias) {
  std::string out = "ARRAY[";
  for (std::size_t i = 0; i < t.quoted_keys.size(); ++i) {
    out += (i == 0 ? "" : ", ") + alias + "." + t.quoted_keys[i] + "::text";
  }
  return out + "]";
}

}  // namespace

std::optional<TableProblem> check_table(const WriteBehindTable& cfg) {
  if (auto bad = check_table_name(cfg.name)) {
    return TableProblem{"name", bad->message};
  }
  if (!cfg.pg_table.empty()) {
    if (auto bad = check_table_name(cfg.pg_table)) {
      return TableProblem{"pg_table", bad->message};
    }
  }
  if (cfg.key_columns.empty()) {
    return TableProblem{"key_columns", "needs at least one key column"};
  }
  std::set<std::string> all;
  for (const auto& [key, list] :
       {std::pair{"key_columns", &cfg.key_columns}, std::pair{"columns", &cfg.columns}}) {
    for (const auto& col : *list) {
      if (auto bad = bad_column(col)) {
        return TableProblem{key, *bad};
      }
      all.insert(col);
    }
  }
  if (!cfg.version_column.empty()) {
    if (auto bad = bad_column(cfg.version_column)) {
      return TableProblem{"version_column", *bad};
    }
    all.insert(cfg.version_column);
  }
  // A row's column set is a 64-bit mask.
  if (all.size() > 64) {
    return TableProblem{"columns",
                        "at most 64 columns per table (key, columns and version_column "
                        "together), got " +
                            std::to_string(all.size())};
  }
  if (cfg.max_rows == 0 || cfg.max_rows > 100000) {
    return TableProblem{"max_rows", "must be 1..100000"};
  }
  if (cfg.max_delay.count() < 0) {
    return TableProblem{"max_delay_ms", "must not be negative"};
  }
  if (cfg.retry_min.count() <= 0) {
    return TableProblem{"retry_min_ms", "must be positive"};
  }
  if (cfg.retry_max < cfg.retry_min) {
    return TableProblem{"retry_max_ms", "must not be below retry_min_ms"};
  }
  if (cfg.claim_idle.count() <= 0) {
    return TableProblem{"claim_idle_ms", "must be positive"};
  }
  if (cfg.max_deliveries < 0) {
    return TableProblem{"max_deliveries", "must not be negative"};
  }
  return std::nullopt;
}

SqlTable sql_table(const WriteBehindTable& cfg) {
  SqlTable t;
  t.name = cfg.name;
  const std::string pgt = cfg.pg_table.empty() ? cfg.name : cfg.pg_table;
  const auto dot = pgt.find('.');
  if (dot != std::string::npos) {
    t.schema = pgt.substr(0, dot);
    t.relname = pgt.substr(dot + 1);
    t.target = pg_quote_ident(*t.schema) + "." + pg_quote_ident(t.relname);
  } else {
    t.relname = pgt;
    t.target = pg_quote_ident(pgt);
  }
  t.key_columns = cfg.key_columns;
  for (const auto& k : cfg.key_columns) {
    t.quoted_keys.push_back(pg_quote_ident(k));
  }
  t.version_column = cfg.version_column;
  return t;
}

Coalescer::Coalescer(const RowLayout& layout, const std::vector<Entry>& entries,
                     std::unordered_map<std::string, long long> deliveries, int max_deliveries)
    : layout_(layout),
      entries_(entries),
      deliveries_(std::move(deliveries)),
      max_deliveries_(max_deliveries) {
  by_key_.reserve(entries.size());
  out_.changes.reserve(entries.size());
}

bool Coalescer::step(std::size_t max, RowScratch& scratch) {
  const std::size_t end = std::min(entries_.size(), next_ + max);
  for (; next_ < end; ++next_) {
    const std::size_t i = next_;
    const Entry& e = entries_[i];
    if (e.deleted) {
      out_.ack.push_back(e.id);
      continue;
    }
    if (!deliveries_.empty()) {
      auto d = deliveries_.find(e.id);
      if (d != deliveries_.end() && max_deliveries_ > 0 && d->second > max_deliveries_) {
        out_.dead.emplace_back(i, "delivered " + std::to_string(d->second) +
                                      " times, over max_deliveries " +
                                      std::to_string(max_deliveries_));
        continue;
      }
    }
    Change c;
    if (auto bad = decode_row(layout_, e.fields, c, scratch)) {
      out_.dead.emplace_back(i, "malformed entry: " + *bad);
      continue;
    }
    c.winner = i;
    c.entries.push_back(i);
    auto it = by_key_.find(c.key);
    if (it == by_key_.end()) {
      out_.changes.push_back(std::move(c));
      by_key_.emplace(out_.changes.back().key, out_.changes.size() - 1);
      continue;
    }
    // The newest version wins; equal versions (or none): the later entry, in stream order.
    Change& old = out_.changes[it->second];
    ++out_.folded;
    const bool newer = !old.version || !c.version || *c.version >= *old.version;
    if (newer) {
      if (c.op == WriteOp::upsert && old.op == WriteOp::upsert) {
        for (std::size_t col = 0; col < old.values.size(); ++col) {
          const std::uint64_t bit = 1ULL << col;
          if ((old.mask & bit) != 0 && (c.mask & bit) == 0) {
            c.values[col] = std::move(old.values[col]);  // c's own values win
            c.mask |= bit;
          }
        }
      }
      c.entries.insert(c.entries.begin(), old.entries.begin(), old.entries.end());
      c.key = std::move(old.key);  // the map views this string: keep it where it is
      old = std::move(c);
    } else {
      old.entries.push_back(i);
    }
  }
  return done();
}

Coalesced coalesce(const RowLayout& layout, const std::vector<Entry>& entries,
                   const std::unordered_map<std::string, long long>& deliveries, int max_deliveries,
                   RowScratch& scratch) {
  Coalescer c(layout, entries, deliveries, max_deliveries);
  c.step(entries.size(), scratch);
  return c.take();
}

std::vector<PgStatement> write_statements(const SqlTable& t, const RowLayout& layout,
                                          const std::vector<Change>& changes,
                                          const std::vector<std::size_t>& chunk) {
  std::map<std::pair<int, std::uint64_t>, std::vector<std::size_t>> groups;
  for (auto i : chunk) {
    const Change& c = changes[i];
    groups[{static_cast<int>(c.op), c.mask}].push_back(i);
  }
  std::vector<PgStatement> out;
  std::vector<PgStatement> dml;
  const std::string vq = t.version_column.empty() ? "" : pg_quote_ident(t.version_column);
  // Values go inline: a transaction without parameters travels as one query string.
  const std::string table_lit = pg_quote_literal(t.target);
  const std::string tombstones_of_table =
      "SELECT 1 FROM " + std::string(kTombstones) + " WHERE table_name = " + table_lit;
  if (!vq.empty()) {
    // Row locks alone do not order a delete and an upsert of the same key in two
    // transactions (the upsert can insert right after the delete commits, past the
    // tombstone its snapshot did not see). A lock per table does, taken first: shared by
    // batches of upserts only (they stay concurrent among themselves), exclusive by a
    // batch with deletes. One lock per transaction: workers never deadlock on it.
    const bool deletes = std::any_of(chunk.begin(), chunk.end(), [&](std::size_t i) {
      return changes[i].op != WriteOp::upsert;
    });
    out.push_back({std::string("SELECT ") +
                       (deletes ? "pg_advisory_xact_lock" : "pg_advisory_xact_lock_shared") +
                       "(hashtext(" + table_lit + "), " + std::to_string(kTableLockKey) + ")",
                   {},
                   std::nullopt});
  }
  int n = 0;
  for (auto& [shape, idx] : groups) {
    const bool upsert = shape.first == static_cast<int>(WriteOp::upsert);
    const std::uint64_t mask = shape.second;
    std::vector<std::string> cols;
    std::vector<std::size_t> colpos;
    for (std::size_t i = 0; i < layout.colnames.size(); ++i) {
      if ((mask & (1ULL << i)) != 0) {
        cols.push_back(layout.colnames[i]);
        colpos.push_back(i);
      }
    }
    const std::string stage = "wb_stage_" + std::to_string(n++);
    std::string list;
    for (const auto& c : cols) {
      list += (list.empty() ? "" : ", ") + pg_quote_ident(c);
    }
    out.push_back({"CREATE TEMP TABLE " + stage + " ON COMMIT DROP AS SELECT " + list + " FROM " +
                       t.target + " WITH NO DATA",
                   {},
                   std::nullopt});
    std::size_t bytes = 0;
    for (auto i : idx) {
      for (auto col : colpos) {
        const auto& v = changes[i].values[col];
        bytes += (v ? v->size() : 0) + 2;
      }
    }
    std::string data;
    data.reserve(bytes + bytes / 8 + 64);
    for (auto i : idx) {
      const Change& c = changes[i];
      bool first = true;
      for (auto col : colpos) {
        if (!first) {
          data += '\t';
        }
        first = false;
        pg_copy_escape(data, c.values[col]);
      }
      data += '\n';
    }
    out.push_back({"COPY " + stage + " (" + list + ") FROM STDIN", {}, std::move(data)});
    if (upsert) {
      std::string keys;
      for (const auto& k : t.quoted_keys) {
        keys += (keys.empty() ? "" : ", ") + k;
      }
      std::string set;
      for (const auto& c : cols) {
        if (std::find(t.key_columns.begin(), t.key_columns.end(), c) == t.key_columns.end()) {
          set += (set.empty() ? "" : ", ") + pg_quote_ident(c) + " = EXCLUDED." + pg_quote_ident(c);
        }
      }
      const std::string rows = "SELECT " + list + " FROM " + stage + " AS s";
      std::string sql = "INSERT INTO " + t.target + " AS t (" + list + ") " + rows;
      if (!vq.empty()) {
        // Never re-create a row over a delete of the same or a newer version. While the
        // table has no tombstones at all (the usual case) the anti-join is never run: each
        // branch's EXISTS is a one-time filter, evaluated once per statement.
        sql += " WHERE NOT EXISTS (" + tombstones_of_table + ") UNION ALL " + rows +
               " WHERE EXISTS (" + tombstones_of_table + ") AND NOT EXISTS (SELECT 1 FROM " +
               std::string(kTombstones) + " AS d WHERE d.table_name = " + table_lit +
               " AND d.key = " + tombstone_key(t, "s") + " AND d.version >= s." + vq + ")";
      }
      sql += " ON CONFLICT (" + keys + ") DO ";
      if (set.empty()) {
        sql += "NOTHING";
      } else {
        sql += "UPDATE SET " + set;
        if (!vq.empty()) {
          // Never apply an old version over a newer one.
          sql += " WHERE t." + vq + " IS NULL OR t." + vq + " < EXCLUDED." + vq;
        }
      }
      dml.push_back({std::move(sql), {}, std::nullopt});
      if (!vq.empty()) {
        // A newer upsert supersedes the delete: its tombstone is no longer needed.
        dml.push_back({"DELETE FROM " + std::string(kTombstones) + " AS d USING " + stage +
                           " AS s WHERE d.table_name = " + table_lit +
                           " AND d.key = " + tombstone_key(t, "s") + " AND d.version < s." + vq,
                       {},
                       std::nullopt});
      }
    } else {
      std::string cond;
      for (const auto& k : t.quoted_keys) {
        cond += (cond.empty() ? "" : " AND ") + std::string("t.") + k + " = s." + k;
      }
      if (!vq.empty()) {
        cond += " AND (t." + vq + " IS NULL OR t." + vq + " <= s." + vq + ")";
        // The tombstone first (the row still tells whether this delete is stale): it keeps
        // an older upsert of a later batch from re-creating the row.
        std::string newer_row;
        for (const auto& k : t.quoted_keys) {
          newer_row += " AND t." + k + " = s." + k;
        }
        dml.push_back({"INSERT INTO " + std::string(kTombstones) +
                           " AS d (table_name, key, version) SELECT " + table_lit + ", " +
                           tombstone_key(t, "s") + ", s." + vq + " FROM " + stage +
                           " AS s WHERE NOT EXISTS (SELECT 1 FROM " + t.target + " AS t WHERE t." +
                           vq + " > s." + vq + newer_row +
                           ") ON CONFLICT (table_name, key) DO UPDATE SET version = "
                           "EXCLUDED.version, deleted_at = EXCLUDED.deleted_at WHERE d.version "
                           "< EXCLUDED.version",
                       {},
                       std::nullopt});
      }
      dml.push_back({"DELETE FROM " + t.target + " AS t USING " + stage + " AS s WHERE " + cond,
                     {},
                     std::nullopt});
    }
  }
  std::move(dml.begin(), dml.end(), std::back_inserter(out));
  return out;
}

PgStatement prune_statement(const SqlTable& t, std::chrono::seconds retention, std::size_t limit) {
  const std::string table = pg_quote_literal(t.target);
  const std::string older =
      "deleted_at < now() - make_interval(secs => " + std::to_string(retention.count()) + ")";
  return {"DELETE FROM " + std::string(kTombstones) + " AS d USING (SELECT key FROM " +
              std::string(kTombstones) + " WHERE table_name = " + table + " AND " + older +
              " LIMIT " + std::to_string(limit) + ") AS o WHERE d.table_name = " + table +
              " AND d.key = o.key AND d." + older,
          {},
          std::nullopt};
}

std::vector<PgStatement> tombstone_ddl() {
  return {{"SET LOCAL client_min_messages = warning", {}, std::nullopt},
          {"SELECT pg_advisory_xact_lock(hashtext('tierd_tombstones'))", {}, std::nullopt},
          {"CREATE TABLE IF NOT EXISTS " + std::string(kTombstones) +
               " (table_name text NOT NULL, key text[] NOT NULL, version bigint NOT NULL, "
               "deleted_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (table_name, key))",
           {},
           std::nullopt},
          {"CREATE INDEX IF NOT EXISTS tierd_tombstones_deleted_at ON " + std::string(kTombstones) +
               " (deleted_at)",
           {},
           std::nullopt}};
}

PgStatement columns_query(const SqlTable& t) {
  return {
      "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = "
      "COALESCE($1, current_schema()) AND table_name = $2",
      {t.schema, t.relname},
      std::nullopt};
}

PgStatement conflict_probe(const SqlTable& t) {
  std::string cols;
  std::string nulls;
  for (const auto& k : t.quoted_keys) {
    cols += (cols.empty() ? "" : ", ") + k;
    nulls += nulls.empty() ? "NULL" : ", NULL";
  }
  return {"EXPLAIN INSERT INTO " + t.target + " (" + cols + ") VALUES (" + nulls +
              ") ON CONFLICT (" + cols + ") DO NOTHING",
          {},
          std::nullopt};
}

std::optional<std::string> check_schema(const WriteBehindTable& cfg, const SqlTable& t,
                                        const std::map<std::string, std::string>& live,
                                        RowLayout& layout) {
  const std::string where = "write-behind table '" + cfg.name + "'";
  if (live.empty()) {
    return where + ": PostgreSQL table " + t.target + " not found";
  }
  auto missing = [&](const std::string& col, const std::string& key) -> std::optional<std::string> {
    if (live.count(col) == 0) {
      return where + ": " + key + ": column \"" + col + "\" does not exist in " + t.target;
    }
    return std::nullopt;
  };
  for (std::size_t i = 0; i < cfg.key_columns.size(); ++i) {
    if (auto bad = missing(cfg.key_columns[i], "key_columns[" + std::to_string(i) + "]")) {
      return bad;
    }
  }
  for (std::size_t i = 0; i < cfg.columns.size(); ++i) {
    if (auto bad = missing(cfg.columns[i], "columns[" + std::to_string(i) + "]")) {
      return bad;
    }
  }
  if (!cfg.version_column.empty()) {
    if (auto bad = missing(cfg.version_column, "version_column")) {
      return bad;
    }
  }
  for (const auto& [col, type] : live) {
    if (type == "json" || type == "jsonb") {
      auto ci = layout.colidx.find(col);
      if (ci != layout.colidx.end()) {
        layout.is_json[static_cast<std::size_t>(ci->second)] = true;
      }
    }
  }
  return std::nullopt;
}

bool rejects_data(const Error& e) {
  // 21000: two rows of one statement hit the same key (e.g. 1 and "1.0" for a numeric key).
  return pg_data_error(e) || e.code == "21000";
}

}  // namespace tierd::wb
