// wb enqueue / status / dead / replay: the write-behind stream of a table
// (docs/write-behind.md) through tier::WriteBehind, so operators use the same layout
// and scripts as the library and the worker.

#include <CLI/CLI.hpp>
#include <iomanip>
#include <iostream>
#include <optional>
#include <set>

#include "context.hpp"
#include "tier/errors.hpp"
#include "tier/keys.hpp"
#include "tier/writebehind.hpp"

namespace tierctl {
namespace {

tier::WriteBehind layout(const Context& ctx) {
  tier::WriteBehindOptions o;
  o.prefix = ctx.options.prefix;
  return tier::WriteBehind(std::move(o));
}

void check_table(const std::string& table) {
  if (auto bad = tier::check_table_name(table)) {
    throw tier::InvalidArgument(bad->message);
  }
}

/// A stream entry id: <ms> or <ms>-<seq>, digits only. Checked here so a hostile id is a
/// usage error, not a Redis error from inside the replay script.
void check_entry_id(const std::string& id) {
  auto digits = [](const std::string& s) {
    return !s.empty() && s.size() <= 20 && s.find_first_not_of("0123456789") == std::string::npos;
  };
  auto dash = id.find('-');
  bool ok = dash == std::string::npos ? digits(id)
                                      : digits(id.substr(0, dash)) && digits(id.substr(dash + 1));
  if (!ok) {
    throw tier::InvalidArgument("dead-letter id '" + tier::excerpt(id, 40) +
                                "' is not a stream id (<ms>-<seq>)");
  }
}

tier::Reply run_raw(Context& ctx, std::vector<std::string> args) {
  auto r = ctx.client().run(tier::raw(std::move(args)));
  if (r.is_error()) {
    throw tier::ReplyError(r.str);
  }
  return r;
}

/// Tables that have a stream or a dead-letter stream under the --prefix (SCAN ... TYPE
/// stream, never KEYS). Table names cannot contain ':', so "<t>:dead" is unambiguous.
std::vector<std::string> discover_tables(Context& ctx) {
  std::string head = ctx.options.prefix + "writebehind:";
  std::set<std::string> tables;
  std::string cursor = "0";
  do {
    auto r = run_raw(ctx, {"SCAN", cursor, "MATCH", tier::glob_escape(head) + "*", "COUNT", "1000",
                           "TYPE", "stream"});
    if (!r.is_array() || r.elements.size() < 2 || !r.elements[1].is_array()) {
      throw tier::ReplyError("unexpected SCAN reply");
    }
    cursor = r.elements[0].str;
    for (const auto& k : r.elements[1].elements) {
      std::string table = k.str.substr(head.size());
      auto colon = table.find(':');
      if (colon != std::string::npos) {
        table.resize(colon);
      }
      if (!tier::check_table_name(table)) {
        tables.insert(table);
      }
    }
  } while (cursor != "0");
  return {tables.begin(), tables.end()};
}

std::string or_dash(long long v) {
  return v < 0 ? "-" : std::to_string(v);
}

Json dead_letter_json(const tier::DeadLetter& d) {
  Json fields = Json::object();
  for (const auto& [k, v] : d.fields) {
    fields[k] = v;
  }
  return {{"id", d.id}, {"original_id", d.original_id}, {"error", d.error}, {"fields", fields}};
}

/// Replays every dead letter present when the command started. Newer ones (a replayed entry
/// that fails again comes back with a new id) are left alone, so this always ends.
long long replay_all(Context& ctx, const tier::WriteBehind& wb, const std::string& table) {
  auto last = run_raw(ctx, {"XREVRANGE", wb.dead_stream(table), "+", "-", "COUNT", "1"});
  if (!last.is_array() || last.elements.empty() || !last.elements[0].is_array() ||
      last.elements[0].elements.empty()) {
    return 0;
  }
  std::string end = last.elements[0].elements[0].str;
  long long total = 0;
  for (;;) {
    auto page = run_raw(ctx, {"XRANGE", wb.dead_stream(table), "-", end, "COUNT", "500"});
    std::vector<std::string> ids;
    for (const auto& e : page.elements) {
      if (e.is_array() && !e.elements.empty()) {
        ids.push_back(e.elements[0].str);
      }
    }
    if (ids.empty()) {
      return total;
    }
    long long moved = ctx.client().run(wb.replay(table, ids));
    total += moved;
    if (moved == 0) {
      return total;  // deleted by someone else meanwhile: nothing left to do
    }
  }
}

}  // namespace

void add_wb_commands(CLI::App& app, Context& ctx) {
  auto* wb = app.add_subcommand("wb", "Write-behind streams: enqueue rows, status, dead letters");
  wb->require_subcommand(1);
  wb->footer(
      "Rows go to the stream <prefix>writebehind:<TABLE> (XADD op upsert|delete row <JSON> "
      "[version N]); tierd's write_behind handler writes them to PostgreSQL.\n\n" +
      std::string(kExitCodesHelp));

  {
    struct Args {
      std::string table;
      std::string row;
      std::optional<long long> version;
      bool del = false;
    };
    auto a = std::make_shared<Args>();
    auto* cmd = wb->add_subcommand("enqueue", "Append a row (or a delete) to a table's stream");
    cmd->add_option("TABLE", a->table, "Table name, [schema.]name")->required();
    cmd->add_option("JSON", a->row,
                    "The row as a JSON object with at least the key columns (for --delete, "
                    "only they are used)")
        ->required();
    cmd->add_option("--version", a->version, "Row version: the newest version wins in PostgreSQL");
    cmd->add_flag("--delete", a->del, "Delete the row with these key columns instead");
    ctx.on_run(cmd, [&ctx, a] {
      check_table(a->table);
      Json row = parse_json_arg(a->row, "row");
      if (!row.is_object()) {
        throw tier::InvalidArgument("row must be a JSON object, not " +
                                    std::string(row.type_name()));
      }
      auto wbl = layout(ctx);
      auto op = a->del ? wbl.enqueue_delete(a->table, row, a->version)
                       : wbl.enqueue(a->table, row, a->version);
      std::string id = ctx.client().run(std::move(op));
      if (ctx.options.json) {
        Json out{{"table", a->table},
                 {"stream", wbl.stream(a->table)},
                 {"id", id},
                 {"op", a->del ? "delete" : "upsert"}};
        if (a->version) {
          out["version"] = *a->version;
        }
        Context::print_json(out);
      } else {
        std::cout << id << '\n';
      }
      return kOk;
    });
  }

  {
    struct Args {
      std::vector<std::string> tables;
      std::string group = "tierd";
    };
    auto a = std::make_shared<Args>();
    auto* cmd = wb->add_subcommand(
        "status", "Stream length, lag, pending entries, oldest pending age and dead letters");
    cmd->add_option("TABLE", a->tables,
                    "Tables to show; default: every table with a stream under the prefix");
    cmd->add_option("--group", a->group, "Consumer group")->capture_default_str();
    ctx.on_run(cmd, [&ctx, a] {
      for (const auto& t : a->tables) {
        check_table(t);
      }
      if (auto bad = tier::check_id(a->group, "group")) {
        throw tier::InvalidArgument(bad->message);
      }
      auto tables = a->tables.empty() ? discover_tables(ctx) : a->tables;
      auto wbl = layout(ctx);
      Json out = Json::array();
      if (!ctx.options.json) {
        std::cout << std::left << std::setw(28) << "TABLE" << std::right << std::setw(10)
                  << "LENGTH" << std::setw(10) << "LAG" << std::setw(10) << "PENDING"
                  << std::setw(16) << "OLDEST_MS" << std::setw(8) << "DEAD" << '\n';
      }
      for (const auto& t : tables) {
        auto s = ctx.client().run(wbl.status(t, a->group));
        if (ctx.options.json) {
          out.push_back({{"table", t},
                         {"stream", wbl.stream(t)},
                         {"length", s.length},
                         {"lag", s.lag},
                         {"pending", s.pending},
                         {"oldest_pending_age_ms", s.oldest_pending_age_ms},
                         {"dead_letters", s.dead_letters}});
        } else {
          std::cout << std::left << std::setw(28) << t << std::right << std::setw(10) << s.length
                    << std::setw(10) << or_dash(s.lag) << std::setw(10) << s.pending
                    << std::setw(16) << or_dash(s.oldest_pending_age_ms) << std::setw(8)
                    << s.dead_letters << '\n';
        }
      }
      if (ctx.options.json) {
        Context::print_json({{"group", a->group}, {"tables", out}});
      }
      return kOk;
    });
    cmd->footer(
        "LAG: entries not yet delivered to the group ('-' = no group yet). OLDEST_MS: age of "
        "the oldest pending entry by the Redis clock ('-' = none pending). --json prints -1 "
        "for both.\n\n" +
        std::string(kExitCodesHelp));
  }

  {
    struct Args {
      std::string table;
      std::size_t count = 100;
    };
    auto a = std::make_shared<Args>();
    auto* cmd = wb->add_subcommand("dead", "List a table's dead letters, oldest first");
    cmd->add_option("TABLE", a->table, "Table name")->required();
    cmd->add_option("--count", a->count, "Most dead letters shown, 1 to 100000")
        ->capture_default_str()
        ->check(CLI::Range(1, 100000));
    ctx.on_run(cmd, [&ctx, a] {
      check_table(a->table);
      auto wbl = layout(ctx);
      auto dead = ctx.client().run(wbl.dead_letters(a->table, a->count));
      if (ctx.options.json) {
        Json list = Json::array();
        for (const auto& d : dead) {
          list.push_back(dead_letter_json(d));
        }
        Context::print_json({{"table", a->table}, {"dead_letters", list}});
        return kOk;
      }
      for (const auto& d : dead) {
        std::cout << d.id << " (was " << d.original_id << "): " << d.error << '\n';
        std::cout << ' ';
        for (const auto& [k, v] : d.fields) {
          std::cout << ' ' << k << '=' << v;
        }
        std::cout << '\n';
      }
      return kOk;
    });
  }

  {
    struct Args {
      std::string table;
      std::vector<std::string> ids;
    };
    auto a = std::make_shared<Args>();
    auto* cmd = wb->add_subcommand(
        "replay", "Move dead letters back to the stream (all of them when no id is given)");
    cmd->add_option("TABLE", a->table, "Table name")->required();
    cmd->add_option("ID", a->ids, "Dead-letter ids (as 'wb dead' shows them)");
    cmd->footer(
        "Prints how many were moved. Exit 1 when a given id is not a dead letter (the others "
        "are still moved).\n\n" +
        std::string(kExitCodesHelp));
    ctx.on_run(cmd, [&ctx, a] {
      check_table(a->table);
      for (const auto& id : a->ids) {
        check_entry_id(id);
      }
      auto wbl = layout(ctx);
      long long moved = a->ids.empty() ? replay_all(ctx, wbl, a->table)
                                       : ctx.client().run(wbl.replay(a->table, a->ids));
      long long missing = a->ids.empty() ? 0 : static_cast<long long>(a->ids.size()) - moved;
      if (ctx.options.json) {
        Context::print_json({{"table", a->table}, {"replayed", moved}, {"missing", missing}});
      } else {
        std::cout << moved << '\n';
      }
      if (missing > 0) {
        std::cerr << "tierctl: " << missing << " of the given ids are not dead letters of '"
                  << a->table << "'\n";
        return kNotFound;
      }
      return kOk;
    });
  }
}

}  // namespace tierctl
