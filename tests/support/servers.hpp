#pragma once
// Private redis-server and PostgreSQL instances for the tests: free ports, temp dirs,
// stopped (and their dirs removed) when the object goes away. Children get
// PR_SET_PDEATHSIG, so a crashed test binary leaves no server behind.

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "tier/sync/client.hpp"

namespace tiertest {

/// A free TCP port on 127.0.0.1 (bound to port 0, then released).
int free_port();

/// A child process started with fork/exec; optionally as another user.
class Process {
 public:
  Process() = default;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process() { kill_and_wait(); }

  /// Starts argv[0] (searched in PATH) with stdout/stderr to `log_path`.
  void spawn(const std::vector<std::string>& argv, const std::string& log_path,
             const std::string& run_as = "", const std::string& cwd = "", int death_signal = 9);
  /// Sends `sig` and waits up to `timeout_ms`; then SIGKILL. Returns the exit status.
  int stop(int sig, int timeout_ms = 10000);
  void kill_and_wait() { stop(9, 5000); }
  void signal(int sig) const;
  bool running();
  /// The wait status of a child that running() found gone (e.g. WTERMSIG 13 = SIGPIPE).
  int status() const { return status_; }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int status_ = 0;
};

/// Runs a command to completion (as `run_as` if set); throws with its output on failure.
void run_command(const std::vector<std::string>& argv, const std::string& run_as = "");

/// mkdtemp under $TMPDIR (or /tmp); removed with everything below it by the destructor.
class TempDir {
 public:
  explicit TempDir(const std::string& tag);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct RedisOptions {
  bool appendonly = false;              ///< AOF with appendfsync always
  std::string password;                 ///< requirepass
  std::vector<std::string> extra_args;  ///< more redis-server arguments
};

class RedisServer {
 public:
  explicit RedisServer(RedisOptions options = {});
  ~RedisServer();

  void stop();
  void start();
  /// Stops and starts again on the same port and directory (AOF data survives).
  void restart();
  /// SIGSTOP / SIGCONT: the TCP port stays open but nothing answers.
  void pause();
  void resume();

  int port() const { return port_; }
  std::string url() const;
  const std::string& dir() const { return dir_->path(); }
  /// A client for test set-up and checks (not the code under test).
  tier::Client& client();

 private:
  RedisOptions options_;
  std::unique_ptr<TempDir> dir_;
  int port_;
  Process proc_;
  std::unique_ptr<tier::Client> client_;
};

class PgServer {
 public:
  PgServer();
  ~PgServer();

  void stop();
  void start();
  int port() const { return port_; }
  /// libpq conninfo ("host=127.0.0.1 port=N user=postgres dbname=postgres").
  std::string conninfo() const;
  /// postgresql://postgres@127.0.0.1:N/postgres
  std::string url() const;
  /// Runs SQL (blocking libpq, test side only); returns rows as text, tab-separated.
  std::vector<std::string> query(const std::string& sql) const;

 private:
  std::unique_ptr<TempDir> dir_;
  std::string bin_;
  int port_;
  Process proc_;
};

/// The servers shared by the tests of one binary, started on first use.
RedisServer& redis();
PgServer& postgres();

}  // namespace tiertest
