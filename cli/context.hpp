#pragma once
// What every tierctl command shares: the global options, the Redis client (opened on
// first use, so commands that need no server never connect), and output helpers.

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tier/cache.hpp"
#include "tier/sync/client.hpp"

namespace CLI {
class App;
}

namespace tierctl {

using Json = nlohmann::json;

/// Exit codes scripts can rely on.
enum Exit : int {
  kOk = 0,
  kNotFound = 1,     ///< get of a missing key
  kUsage = 2,        ///< bad arguments, bad JSON, invalid id
  kConnection = 3,   ///< cannot connect, timed out, connection lost
  kRedis = 4,        ///< Redis answered with an error, or a stored value is not JSON
  kDenied = 5,       ///< a rate limit denied the check, or an enforced quota refused it
  kNotAcquired = 6,  ///< lock run: the lock was not acquired within --wait (COMMAND not started)
  kLockLost = 7,     ///< lock run: the lock was lost while COMMAND ran (COMMAND was stopped)
};

/// The exit codes, as --help shows them.
inline constexpr const char* kExitCodesHelp =
    "Exit codes: 0 ok, 1 key not found, 2 usage error (bad argument, JSON or id), "
    "3 connection failure or timeout, 4 Redis error or undecodable value, 5 denied by a rate "
    "limit or an enforced quota, 6 lock not acquired in time, 7 lock lost while the command ran.";

struct GlobalOptions {
  std::string redis_url;  ///< --redis; default from TIERD_REDIS_URL
  bool json = false;      ///< --json: machine-readable JSON on stdout
  std::string prefix;     ///< --prefix: namespace prefix before every key
};

class Context {
 public:
  GlobalOptions options;
  /// The arguments after `--` of a command that runs another program (fetch).
  std::vector<std::string> passthrough;

  /// The client, connecting on first use (the URL is parsed then).
  tier::Client& client();
  /// The cache layout with the --prefix namespace.
  const tier::Cache& cache();

  /// Registers what a subcommand does once parsing has selected it.
  void on_run(CLI::App* command, std::function<int()> run);
  /// Runs the selected subcommand; returns its exit code.
  int run_selected();

  /// One line of JSON on stdout.
  static void print_json(const Json& j);

 private:
  std::unique_ptr<tier::Client> client_;
  std::unique_ptr<tier::Cache> cache_;
  std::vector<std::pair<CLI::App*, std::function<int()>>> commands_;
};

/// Ends tierctl with this exit status and message (a command's own status, passed on).
struct ExitStatus : std::runtime_error {
  ExitStatus(const std::string& what, int code) : std::runtime_error(what), status(code) {}
  int status;
};

/// Parses a JSON command-line argument; InvalidArgument naming `what` when it is not JSON.
Json parse_json_arg(const std::string& text, const std::string& what);

void add_cache_commands(CLI::App& app, Context& ctx);
void add_pubsub_commands(CLI::App& app, Context& ctx);
void add_admin_commands(CLI::App& app, Context& ctx);
void add_wb_commands(CLI::App& app, Context& ctx);
void add_limit_commands(CLI::App& app, Context& ctx);
void add_lock_commands(CLI::App& app, Context& ctx);

}  // namespace tierctl
