// invalidate / clear-session / dedup-hash / stats.

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <iterator>
#include <sstream>

#include "context.hpp"
#include "tier/dedup.hpp"
#include "tier/errors.hpp"
#include "tier/keys.hpp"
#include "tier/stats.hpp"
#include "tier/sync/scan_delete.hpp"

namespace tierctl {
namespace {

/// SCAN + UNLINK; a running count on stderr only for a person watching a terminal.
std::uint64_t delete_matching(Context& ctx, const std::string& pattern, std::uint32_t batch) {
  tier::DeleteOptions o;
  o.batch = batch;
  bool tty = ::isatty(STDERR_FILENO) == 1;
  if (tty) {
    o.progress = [](std::uint64_t n) { std::cerr << "\rdeleted " << n << " keys" << std::flush; };
  }
  auto n = tier::delete_by_pattern(ctx.client(), pattern, o);
  if (tty) {
    std::cerr << '\n';
  }
  return n;
}

void print_deleted(const Context& ctx, const std::string& pattern, std::uint64_t n) {
  if (ctx.options.json) {
    Context::print_json({{"pattern", pattern}, {"deleted", n}});
  } else {
    std::cout << n << '\n';
  }
}

std::string read_all(const std::string& path) {
  if (path == "-") {
    std::ostringstream ss;
    ss << std::cin.rdbuf();
    return ss.str();
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw tier::InvalidArgument("cannot read '" + path + "': " + std::strerror(errno));
  }
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string human_bytes(std::uint64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024.0 && u < 4) {
    v /= 1024.0;
    ++u;
  }
  std::ostringstream ss;
  ss << std::fixed << std::setprecision(u == 0 ? 0 : 1) << v << ' ' << units[u];
  return ss.str();
}

Json info_json(const tier::ServerInfo& i) {
  Json keys = Json::object();
  for (const auto& [db, n] : i.keys_per_db) {
    keys[db] = n;
  }
  return {{"redis_version", i.redis_version},
          {"uptime_s", i.uptime_s},
          {"used_memory", i.used_memory},
          {"used_memory_peak", i.used_memory_peak},
          {"maxmemory", i.maxmemory},
          {"connected_clients", i.connected_clients},
          {"blocked_clients", i.blocked_clients},
          {"total_commands_processed", i.total_commands_processed},
          {"instantaneous_ops_per_sec", i.instantaneous_ops_per_sec},
          {"keyspace_hits", i.keyspace_hits},
          {"keyspace_misses", i.keyspace_misses},
          {"hit_ratio", i.hit_ratio()},
          {"evicted_keys", i.evicted_keys},
          {"expired_keys", i.expired_keys},
          {"keys_per_db", keys}};
}

void print_info(const tier::ServerInfo& i) {
  auto row = [](const char* name, const std::string& value) {
    std::cout << std::left << std::setw(26) << name << value << '\n';
  };
  row("redis_version", i.redis_version);
  row("uptime_s", std::to_string(i.uptime_s));
  row("used_memory", human_bytes(i.used_memory));
  row("used_memory_peak", human_bytes(i.used_memory_peak));
  row("maxmemory", i.maxmemory == 0 ? "no limit" : human_bytes(i.maxmemory));
  row("connected_clients", std::to_string(i.connected_clients));
  row("blocked_clients", std::to_string(i.blocked_clients));
  row("total_commands_processed", std::to_string(i.total_commands_processed));
  row("instantaneous_ops_per_sec", std::to_string(i.instantaneous_ops_per_sec));
  row("keyspace_hits", std::to_string(i.keyspace_hits));
  row("keyspace_misses", std::to_string(i.keyspace_misses));
  std::ostringstream ratio;
  ratio << std::fixed << std::setprecision(2) << 100.0 * i.hit_ratio() << " %";
  row("hit_ratio", i.keyspace_hits + i.keyspace_misses == 0 ? "n/a (no reads)" : ratio.str());
  row("evicted_keys", std::to_string(i.evicted_keys));
  row("expired_keys", std::to_string(i.expired_keys));
  for (const auto& [db, n] : i.keys_per_db) {
    row((db + " keys").c_str(), std::to_string(n));
  }
}

}  // namespace

void add_admin_commands(CLI::App& app, Context& ctx) {
  {
    struct Args {
      std::string pattern;
      std::uint32_t batch = 1000;
    };
    auto a = std::make_shared<Args>();
    auto* cmd = app.add_subcommand("invalidate",
                                   "Delete every key matching a glob pattern; prints the count");
    cmd->footer(
        "Keys are found with SCAN and deleted with UNLINK in bounded steps (never KEYS), so "
        "Redis stays responsive. Progress is shown on stderr when it is a terminal.\n\n" +
        std::string(kExitCodesHelp));
    cmd->add_option("PATTERN", a->pattern,
                    "SCAN MATCH pattern, e.g. 'project:42:*' (the --prefix is put in front)")
        ->required();
    cmd->add_option("--batch", a->batch, "Keys examined per step (SCAN COUNT), 1 to 100000")
        ->capture_default_str()
        ->check(CLI::Range(1, 100000));
    ctx.on_run(cmd, [&ctx, a] {
      // Checked before the prefix goes in front, which would make it non-empty.
      if (a->pattern.empty()) {
        throw tier::InvalidArgument("pattern is empty");
      }
      std::string pattern = tier::glob_escape(ctx.options.prefix) + a->pattern;
      print_deleted(ctx, pattern, delete_matching(ctx, pattern, a->batch));
      return kOk;
    });
  }

  {
    auto id = std::make_shared<std::string>();
    auto* cmd = app.add_subcommand("clear-session", "Delete every key of one session");
    cmd->add_option("ID", *id, "Session id")->required();
    ctx.on_run(cmd, [&ctx, id] {
      if (auto bad = tier::check_id(*id, "session_id")) {
        throw tier::InvalidArgument(bad->message);
      }
      std::string pattern = ctx.cache().session_pattern(*id);
      print_deleted(ctx, pattern, delete_matching(ctx, pattern, 1000));
      return kOk;
    });
  }

  {
    auto file = std::make_shared<std::string>();
    auto* cmd = app.add_subcommand("dedup-hash", "Print the code_hash of a file (no Redis needed)");
    cmd->footer(
        "code_hash = lowercase hex SHA-256 of the code after CRLF/CR become LF, trailing "
        "whitespace is stripped from each line and trailing blank lines are dropped.\n\n" +
        std::string(kExitCodesHelp));
    cmd->add_option("FILE", *file, "File to hash; '-' reads stdin")->required();
    ctx.on_run(cmd, [&ctx, file] {
      std::string code = read_all(*file);
      std::string hash = tier::code_hash(code);
      if (ctx.options.json) {
        Context::print_json({{"file", *file}, {"bytes", code.size()}, {"code_hash", hash}});
      } else {
        std::cout << hash << '\n';
      }
      return kOk;
    });
  }

  {
    auto* cmd = app.add_subcommand(
        "stats", "Show Redis server statistics (INFO) and the keyspace hit ratio");
    ctx.on_run(cmd, [&ctx] {
      auto info = ctx.client().run(tier::server_info());
      if (ctx.options.json) {
        Context::print_json(info_json(info));
      } else {
        print_info(info);
      }
      return kOk;
    });
  }
}

}  // namespace tierctl
