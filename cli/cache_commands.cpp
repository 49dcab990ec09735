// get / set / del / mget: the three cache tiers (DESIGN §4) through tier::Cache.

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstring>
#include <iostream>

#include "context.hpp"
#include "tier/errors.hpp"
#include "tier/keys.hpp"
#include "tier/numbers.hpp"
#include "tier/sync/patterns.hpp"

namespace tierctl {
namespace {

const std::vector<std::string> kTiers{"session", "project", "global"};

const char* kKeyParts =
    "session/project: ID KEY; global: TYPE IDENTIFIER METRIC "
    "(key session:{ID}:{KEY}, project:{ID}:{KEY} or {TYPE}:{IDENTIFIER}:{METRIC})";

std::size_t parts_of(tier::Tier t) {
  return t == tier::Tier::global ? 3 : 2;
}

tier::Tier tier_of(const std::string& name) {
  auto t = tier::parse_tier(name);
  if (!t) {
    throw tier::InvalidArgument("unknown tier '" + name + "' (session, project or global)");
  }
  return *t;
}

tier::TierKey make_key(const tier::Cache& cache, tier::Tier t, const std::string* p) {
  switch (t) {
    case tier::Tier::session:
      return cache.session(p[0], p[1]);
    case tier::Tier::project:
      return cache.project(p[0], p[1]);
    case tier::Tier::global:
      return cache.global(p[0], p[1], p[2]);
  }
  throw tier::InvalidArgument("unknown tier");
}

/// The key named by exactly the tier's number of parts (plus `extra` trailing arguments).
// `trailing` names the arguments after the key parts ("" for none), for the usage error.
tier::TierKey key_from(const tier::Cache& cache, tier::Tier t, const std::vector<std::string>& args,
                       std::size_t extra, const std::string& trailing = "") {
  if (args.size() != parts_of(t) + extra) {
    std::string usage = t == tier::Tier::global ? "TYPE IDENTIFIER METRIC" : "ID KEY";
    if (!trailing.empty()) {
      usage += " " + trailing;
    }
    throw tier::InvalidArgument(std::string("the ") + tier::to_string(t) + " tier takes " + usage);
  }
  return make_key(cache, t, args.data());
}

/// Runs COMMAND (PATH searched) with stdin closed and stderr inherited; its stdout, which
/// must be one JSON value, is the loaded value.
tier::Json run_loader(const std::vector<std::string>& command) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    throw tier::IoError(std::string("fetch: pipe: ") + std::strerror(errno));
  }
  const pid_t pid = ::fork();
  if (pid < 0) {
    throw tier::IoError(std::string("fetch: fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    ::dup2(out[1], STDOUT_FILENO);
    const int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) {
      ::dup2(devnull, STDIN_FILENO);
    }
    std::vector<char*> argv;
    for (const auto& s : command) {
      argv.push_back(const_cast<char*>(s.c_str()));
    }
    argv.push_back(nullptr);
    ::execvp(argv[0], argv.data());
    std::fprintf(stderr, "tierctl: fetch: cannot run %s: %s\n", argv[0], std::strerror(errno));
    ::_exit(127);
  }
  ::close(out[1]);
  std::string text;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(out[0], buf, sizeof buf);
    if (n > 0) {
      text.append(buf, static_cast<std::size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  ::close(out[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    throw ExitStatus(
        "fetch: " + command[0] + " exited with status " + std::to_string(code) + "; nothing stored",
        code);
  }
  tier::Json value = tier::Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) {
    throw tier::InvalidArgument("fetch: the output of " + command[0] + " is not JSON: '" +
                                tier::excerpt(text, 60) + "'; nothing stored");
  }
  return value;
}

CLI::Option* add_tier_option(CLI::App* cmd, std::string& tier) {
  return cmd->add_option("--tier,-t", tier, "Cache tier: session, project or global")
      ->required()
      ->check(CLI::IsMember(kTiers));
}

}  // namespace

void add_cache_commands(CLI::App& app, Context& ctx) {
  // The CLI11 objects hold references into these; they live as long as the app.
  struct Args {
    std::string tier;
    std::vector<std::string> parts;
    long long ttl_s = 0;
  };

  {
    auto* cmd = app.add_subcommand("get", "Print a cached JSON value (exit 1 when absent)");
    auto a = std::make_shared<Args>();
    add_tier_option(cmd, a->tier);
    cmd->add_option("KEY", a->parts, kKeyParts)->required();
    ctx.on_run(cmd, [&ctx, a] {
      auto t = tier_of(a->tier);
      auto k = key_from(ctx.cache(), t, a->parts, 0);
      auto v = ctx.client().run(ctx.cache().get(k));
      if (ctx.options.json) {
        Json out{{"key", k.key}, {"tier", a->tier}, {"found", v.has_value()}};
        if (v) {
          out["value"] = *v;
        }
        Context::print_json(out);
      } else if (v) {
        Context::print_json(*v);
      }
      if (!v) {
        std::cerr << "tierctl: key '" << k.key << "' not found\n";
        return kNotFound;
      }
      return kOk;
    });
  }

  {
    auto* cmd = app.add_subcommand("set", "Store a JSON value with the tier's TTL (or --ttl)");
    auto a = std::make_shared<Args>();
    add_tier_option(cmd, a->tier);
    cmd->add_option("KEY_VALUE", a->parts, std::string(kKeyParts) + ", then VALUE_JSON")
        ->required();
    cmd->add_option("--ttl", a->ttl_s,
                    "Expiry in seconds (default: session 300, project 3600, global 86400)")
        ->check(CLI::PositiveNumber);
    ctx.on_run(cmd, [&ctx, a] {
      auto t = tier_of(a->tier);
      auto k = key_from(ctx.cache(), t, a->parts, 1, "VALUE_JSON");
      Json value = parse_json_arg(a->parts.back(), "VALUE_JSON");
      std::optional<std::chrono::seconds> ttl;
      if (a->ttl_s > 0) {
        ttl = std::chrono::seconds{a->ttl_s};
      }
      // Cache::set uses the same rule; computing it here lets us report it.
      auto effective = ctx.cache().effective_ttl(t, ttl);
      ctx.client().run(ctx.cache().set(k, value, effective));
      if (ctx.options.json) {
        Context::print_json({{"key", k.key}, {"tier", a->tier}, {"ttl_s", effective.count()}});
      } else {
        std::cout << "OK\n";
      }
      return kOk;
    });
  }

  {
    auto* cmd = app.add_subcommand("del", "Delete a cached value (UNLINK)");
    auto a = std::make_shared<Args>();
    add_tier_option(cmd, a->tier);
    cmd->add_option("KEY", a->parts, kKeyParts)->required();
    ctx.on_run(cmd, [&ctx, a] {
      auto t = tier_of(a->tier);
      auto k = key_from(ctx.cache(), t, a->parts, 0);
      bool existed = ctx.client().run(ctx.cache().del(k));
      if (ctx.options.json) {
        Context::print_json({{"key", k.key}, {"deleted", existed}});
      } else {
        std::cout << (existed ? "deleted" : "absent") << '\n';
      }
      return kOk;
    });
  }

  {
    auto* cmd = app.add_subcommand(
        "mget",
        "Print values of several keys of one id, or of one global TYPE IDENTIFIER, in one MGET");
    auto a = std::make_shared<Args>();
    add_tier_option(cmd, a->tier);
    cmd->add_option("KEYS", a->parts,
                    "session/project: ID KEY...; global: TYPE IDENTIFIER METRIC...")
        ->required();
    ctx.on_run(cmd, [&ctx, a] {
      auto t = tier_of(a->tier);
      std::size_t fixed = parts_of(t) - 1;
      if (a->parts.size() < fixed + 1) {
        throw tier::InvalidArgument(
            std::string("mget on the ") + tier::to_string(t) + " tier takes " +
            (t == tier::Tier::global ? "TYPE IDENTIFIER METRIC..." : "ID KEY..."));
      }
      std::vector<tier::TierKey> keys;
      for (std::size_t i = fixed; i < a->parts.size(); ++i) {
        std::string p[3];
        for (std::size_t j = 0; j < fixed; ++j) {
          p[j] = a->parts[j];
        }
        p[fixed] = a->parts[i];
        keys.push_back(make_key(ctx.cache(), t, p));
      }
      auto values = ctx.client().run(ctx.cache().mget(keys));
      if (ctx.options.json) {
        Json out = Json::array();
        for (std::size_t i = 0; i < keys.size(); ++i) {
          Json e{{"key", keys[i].key}, {"found", values[i].has_value()}};
          if (values[i]) {
            e["value"] = *values[i];
          }
          out.push_back(std::move(e));
        }
        Context::print_json(out);
      } else {
        // One line per key, in order; "(nil)" for a missing key, as redis-cli prints it.
        for (auto& v : values) {
          if (v) {
            Context::print_json(*v);
          } else {
            std::cout << "(nil)\n";
          }
        }
      }
      return kOk;
    });
  }
  {
    struct FetchArgs {
      std::string tier;
      std::vector<std::string> args;
      std::string ttl;
      std::string wait = "60s";
    };
    auto a = std::make_shared<FetchArgs>();
    auto* cmd = app.add_subcommand(
        "fetch",
        "Cache-aside from a shell: print the cached value, or run COMMAND once across every "
        "caller (single-flight), cache its JSON stdout and print it");
    add_tier_option(cmd, a->tier);
    cmd->add_option("--ttl", a->ttl,
                    "TTL of the stored value (500ms, 60s, 1m, 1h, 1d); default: "
                    "the tier's");
    cmd->add_option("--wait", a->wait,
                    "How long to wait for another caller's COMMAND before running it here")
        ->capture_default_str();
    cmd->add_option("KEY", a->args, std::string(kKeyParts) + "; then -- COMMAND [ARGS...]")
        ->required();
    cmd->footer(
        "Example: tierctl fetch --tier project p-42 report -- ./build_report.sh p-42\n"
        "A failing COMMAND stores nothing and tierctl exits with its status.\n\n" +
        std::string(kExitCodesHelp));
    ctx.on_run(cmd, [&ctx, a] {
      const tier::Tier t = tier_of(a->tier);
      const std::size_t n = parts_of(t);
      const std::vector<std::string>& command = ctx.passthrough;
      if (a->args.size() != n || command.empty()) {
        throw tier::InvalidArgument(std::string("fetch takes the key (") +
                                    (n == 3 ? "TYPE IDENTIFIER METRIC" : "ID KEY") +
                                    "), then -- COMMAND [ARGS...]");
      }
      const std::vector<std::string>& parts = a->args;
      tier::TierKey key = make_key(ctx.cache(), t, parts.data());
      tier::AsideOptions o;
      if (!a->ttl.empty()) {
        auto ttl = tier::parse_duration(a->ttl);
        if (!ttl || ttl->count() < 1000) {
          throw tier::InvalidArgument("--ttl '" + a->ttl + "': a duration of at least 1s");
        }
        o.ttl = std::chrono::duration_cast<std::chrono::seconds>(*ttl);
      }
      auto wait = tier::parse_duration(a->wait);
      if (!wait) {
        throw tier::InvalidArgument("--wait '" + a->wait + "': a positive duration (500ms, 60s)");
      }
      o.wait = *wait;
      o.lease = std::max(*wait, std::chrono::milliseconds(1000));
      tier::CachePatterns patterns(ctx.cache());
      const tier::Json value =
          tier::cache_aside(ctx.client(), patterns, key, [&] { return run_loader(command); });
      Context::print_json(value);
      return kOk;
    });
  }
}

}  // namespace tierctl
