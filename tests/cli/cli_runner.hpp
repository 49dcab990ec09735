#pragma once
// Runs the tierctl binary as a child process with pipes on stdin/stdout/stderr and a
// deadline (a hung command is killed and reported, never waited on forever).

#include <sys/types.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace tiertest {

struct CliResult {
  int exit_code = -1;      ///< -1 when killed by a signal or by the deadline
  bool timed_out = false;  ///< the deadline passed and the process was killed
  std::string out;
  std::string err;
};

/// Environment changes for the child: a value sets the variable, "" unsets it.
using CliEnv = std::map<std::string, std::string>;

class CliProcess {
 public:
  /// Starts tierctl with `args`; `input` is written to its stdin, which is then closed.
  /// TIERD_REDIS_URL, TIERD_REDIS_PASSWORD and REDISCLI_AUTH are unset unless `env` sets them.
  /// With `stderr_tty`, stderr is a pseudo-terminal (what a person at a shell has).
  explicit CliProcess(const std::vector<std::string>& args, const std::string& input = "",
                      const CliEnv& env = {}, bool stderr_tty = false);
  ~CliProcess();
  CliProcess(const CliProcess&) = delete;
  CliProcess& operator=(const CliProcess&) = delete;

  /// Reads output until stdout contains `text`; false if the deadline passes (or the
  /// process ends) first. What was read is kept for wait().
  bool wait_for_output(const std::string& text,
                       std::chrono::milliseconds deadline = std::chrono::seconds(10));
  /// Collects output until the process exits, or kills it when `deadline` passes.
  CliResult wait(std::chrono::milliseconds deadline = std::chrono::seconds(10));
  pid_t pid() const { return pid_; }

 private:
  /// Reads what is available within `until`; false once the deadline passed.
  bool pump(std::chrono::steady_clock::time_point until);

  pid_t pid_ = -1;
  int out_ = -1;
  int err_ = -1;
  CliResult result_;
};

/// Runs tierctl to completion (deadline 10 s).
CliResult tierctl(const std::vector<std::string>& args, const std::string& input = "",
                  const CliEnv& env = {});

class TestKeys;

/// `args` after --redis <the harness's server> --prefix <the test's key prefix>, so tests
/// never share keys.
std::vector<std::string> with(const TestKeys& keys, std::vector<std::string> args);

/// Exit code, stdout and stderr, for a failing check's message.
std::string describe(const CliResult& r);

}  // namespace tiertest
