// tierctl: every libtier capability from the shell (DESIGN §6). Errors go to stderr as one
// line "tierctl: <message>"; the exit code says what kind of failure it was.

#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <iostream>
#include <string_view>

#include "context.hpp"
#include "tier/errors.hpp"

namespace {

int fail(int code, const std::string& message) {
  std::cerr << "tierctl: " << message << '\n';
  return code;
}

std::string default_url() {
  const char* env = std::getenv("TIERD_REDIS_URL");
  return env != nullptr && *env != '\0' ? env : "redis://127.0.0.1:6379";
}

}  // namespace

int main(int argc, char** argv) {
  // A closed stdout pipe (tierctl ... | head) must end the command with an error, not a signal.
  ::signal(SIGPIPE, SIG_IGN);

  tierctl::Context ctx;
  ctx.options.redis_url = default_url();

  CLI::App app{
      "tierctl: read and write the tierd cache, publish and watch events, invalidate "
      "keys and show Redis statistics.",
      "tierctl"};
  app.set_version_flag("--version", std::string("tierctl ") + TIERD_VERSION);
  app.add_option("--redis", ctx.options.redis_url,
                 "Redis URL: redis://[user:password@]host:port/db or unix://path[?db=N]. The "
                 "password may come from TIERD_REDIS_PASSWORD or REDISCLI_AUTH instead. Default: "
                 "$TIERD_REDIS_URL, else redis://127.0.0.1:6379")
      ->envname("TIERD_REDIS_URL");
  app.add_flag("--json", ctx.options.json, "Print machine-readable JSON on stdout");
  app.add_option("--prefix", ctx.options.prefix,
                 "Namespace prefix put before every key (e.g. 'myapp:')");
  app.require_subcommand(1);
  // Global options are accepted after the command name too (tierctl get --json ...).
  app.fallthrough();
  // Subcommands inherit the footer they are created with: the exit codes only.
  app.footer(tierctl::kExitCodesHelp);

  tierctl::add_cache_commands(app, ctx);
  tierctl::add_pubsub_commands(app, ctx);
  tierctl::add_admin_commands(app, ctx);
  tierctl::add_wb_commands(app, ctx);
  tierctl::add_limit_commands(app, ctx);
  tierctl::add_lock_commands(app, ctx);
  app.footer(
      std::string(
          "Examples:\n"
          "  tierctl set --tier session s-1 prefs '{\"theme\":\"dark\"}' --ttl 600\n"
          "  tierctl --json get --tier global model gpt-4 latency\n"
          "  tierctl publish events:version_promoted '{\"id\":\"e-1\",\"version\":3}'\n"
          "  tierctl subscribe 'events:*' --count 1\n"
          "  tierctl invalidate 'project:42:*'\n"
          "  tierctl wb enqueue analysis_results '{\"project_id\":\"p1\",\"code_hash\":\"ab\"}' "
          "--version 3\n"
          "  tierctl wb status\n\n") +
      tierctl::kExitCodesHelp);

  try {
    // `fetch ... -- COMMAND [ARGS...]` and `lock run ... -- COMMAND [ARGS...]`: what follows
    // "--" is the command to run, never
    // tierctl's own arguments; CLI11 sees only what comes before.
    int parsed = argc;
    for (int i = 1; i < argc; ++i) {
      if (std::string_view(argv[i]) == "fetch" || std::string_view(argv[i]) == "lock") {
        for (int j = i + 1; j < argc; ++j) {
          if (std::string_view(argv[j]) == "--") {
            ctx.passthrough.assign(argv + j + 1, argv + argc);
            parsed = j;
            break;
          }
        }
        break;
      }
    }
    app.parse(parsed, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return fail(tierctl::kUsage, std::string(e.what()) + " (see tierctl --help)");
  }

  try {
    int rc = ctx.run_selected();
    std::cout.flush();
    if (!std::cout) {
      return fail(tierctl::kConnection, "cannot write to stdout");
    }
    return rc;
  } catch (const tierctl::ExitStatus& e) {
    return fail(e.status, e.what());
  } catch (const tier::InvalidArgument& e) {
    return fail(tierctl::kUsage, e.what());
  } catch (const tier::IoError& e) {  // TimeoutError and ClosedError included
    return fail(tierctl::kConnection, e.what());
  } catch (const tier::ProtocolError& e) {
    // The byte stream is unusable (not a Redis server, or a broken proxy): a connection problem.
    return fail(tierctl::kConnection, e.what());
  } catch (const tier::TierError& e) {  // ReplyError, DecodeError
    return fail(tierctl::kRedis, e.what());
  } catch (const CLI::ParseError& e) {
    return fail(tierctl::kUsage, e.what());
  } catch (const std::exception& e) {
    return fail(tierctl::kRedis, e.what());
  }
}
