#include "servers.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "helpers.hpp"

namespace fs = std::filesystem;

namespace tiertest {

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    throw std::runtime_error("free_port: bind failed");
  }
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const passwd* user_entry(const std::string& name) {
  const passwd* pw = ::getpwnam(name.c_str());
  if (pw == nullptr) {
    throw std::runtime_error("no user '" + name + "' on this machine");
  }
  return pw;
}

// PostgreSQL refuses to run as root; as root the harness runs it as `postgres`.
std::string pg_user() {
  return ::geteuid() == 0 ? "postgres" : "";
}

std::string find_pg_bin() {
  std::string best;
  if (fs::exists("/usr/lib/postgresql")) {
    for (const auto& e : fs::directory_iterator("/usr/lib/postgresql")) {
      auto bin = e.path() / "bin";
      if (fs::exists(bin / "initdb") && bin.string() > best) {
        best = bin.string();
      }
    }
  }
  if (best.empty()) {
    throw std::runtime_error("PostgreSQL server binaries not found under /usr/lib/postgresql");
  }
  return best;
}

}  // namespace

void Process::spawn(const std::vector<std::string>& argv, const std::string& log_path,
                    const std::string& run_as, const std::string& cwd, int death_signal) {
  const passwd* pw = run_as.empty() ? nullptr : user_entry(run_as);
  uid_t uid = pw != nullptr ? pw->pw_uid : 0;
  gid_t gid = pw != nullptr ? pw->pw_gid : 0;
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    throw std::runtime_error("fork failed");
  }
  if (pid == 0) {
    int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::close(fd);
    }
    int devnull = ::open("/dev/null", O_RDONLY);
    ::dup2(devnull, 0);
    ::setpgid(0, 0);
    if (pw != nullptr) {
      if (::setgid(gid) != 0 || ::setuid(uid) != 0) {
        _exit(126);
      }
    }
    // After setuid: a credential change clears the parent-death signal.
    ::prctl(PR_SET_PDEATHSIG, death_signal);
    if (::getppid() != parent) {
      _exit(125);
    }
    if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) {
      _exit(124);
    }
    std::vector<char*> args;
    for (const auto& a : argv) {
      args.push_back(const_cast<char*>(a.c_str()));
    }
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    _exit(127);
  }
  pid_ = pid;
}

void Process::signal(int sig) const {
  if (pid_ > 0) {
    ::kill(pid_, sig);
  }
}

bool Process::running() {
  if (pid_ <= 0) {
    return false;
  }
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    pid_ = -1;
    status_ = status;
    return false;
  }
  return true;
}

int Process::stop(int sig, int timeout_ms) {
  if (pid_ <= 0) {
    return 0;
  }
  ::kill(pid_, SIGCONT);  // a paused process cannot act on the signal
  ::kill(pid_, sig);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  int status = 0;
  for (;;) {
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_ || r < 0) {
      break;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // polling a child's exit
  }
  pid_ = -1;
  return status;
}

void run_command(const std::vector<std::string>& argv, const std::string& run_as) {
  TempDir tmp("cmd");
  if (!run_as.empty()) {
    const passwd* pw = user_entry(run_as);
    if (::chown(tmp.path().c_str(), pw->pw_uid, pw->pw_gid) != 0) {
      throw std::runtime_error("chown " + tmp.path() + " failed");
    }
  }
  std::string log = tmp.path() + "/out.log";
  Process p;
  p.spawn(argv, log, run_as, tmp.path());
  // Wait for a command that ends by itself: stop() with signal 0 just waits.
  int status = p.stop(0, 120000);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string cmd;
    for (const auto& a : argv) {
      cmd += a + " ";
    }
    throw std::runtime_error("command failed: " + cmd + "\n" + read_file(log));
  }
}

TempDir::TempDir(const std::string& tag) {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base != nullptr ? base : "/tmp") + "/tierd-" + tag + "-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) {
    throw std::runtime_error("mkdtemp failed for " + tmpl);
  }
  path_ = buf.data();
  ::chmod(path_.c_str(), 0755);
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

RedisServer::RedisServer(RedisOptions options)
    : options_(std::move(options)), dir_(std::make_unique<TempDir>("redis")), port_(free_port()) {
  start();
}

RedisServer::~RedisServer() {
  stop();
}

std::string RedisServer::url() const {
  return "redis://127.0.0.1:" + std::to_string(port_) + "/0";
}

void RedisServer::start() {
  std::vector<std::string> argv{"redis-server", "--port",    std::to_string(port_),
                                "--bind",       "127.0.0.1", "--dir",
                                dir_->path(),   "--save",    "",
                                "--daemonize",  "no",        "--protected-mode",
                                "no",           "--logfile", ""};
  if (options_.appendonly) {
    argv.insert(argv.end(), {"--appendonly", "yes", "--appendfsync", "always"});
  } else {
    argv.insert(argv.end(), {"--appendonly", "no"});
  }
  if (!options_.password.empty()) {
    argv.insert(argv.end(), {"--requirepass", options_.password});
  }
  argv.insert(argv.end(), options_.extra_args.begin(), options_.extra_args.end());
  proc_.spawn(argv, dir_->path() + "/redis.log");
  tier::ClientOptions o;
  o.endpoint = tier::RedisEndpoint::parse(url());
  o.endpoint.password = options_.password;
  o.connect_timeout = std::chrono::milliseconds(500);
  o.command_timeout = std::chrono::milliseconds(5000);
  client_ = std::make_unique<tier::Client>(o);
  bool up = eventually(
      [&] {
        if (!proc_.running()) {
          throw std::runtime_error("redis-server exited:\n" +
                                   read_file(dir_->path() + "/redis.log"));
        }
        auto r = client_->try_run(tier::raw({"PING"}));
        return r.ok() && r->type == tier::Reply::Type::status;
      },
      std::chrono::seconds(15));
  if (!up) {
    throw std::runtime_error("redis-server did not answer PING:\n" +
                             read_file(dir_->path() + "/redis.log"));
  }
}

void RedisServer::stop() {
  client_.reset();
  proc_.stop(SIGTERM, 10000);
}

void RedisServer::restart() {
  stop();
  start();
}

void RedisServer::pause() {
  proc_.signal(SIGSTOP);
}
void RedisServer::resume() {
  proc_.signal(SIGCONT);
}

tier::Client& RedisServer::client() {
  return *client_;
}

PgServer::PgServer()
    : dir_(std::make_unique<TempDir>("pg")), bin_(find_pg_bin()), port_(free_port()) {
  std::string user = pg_user();
  if (!user.empty()) {
    const passwd* pw = user_entry(user);
    if (::chown(dir_->path().c_str(), pw->pw_uid, pw->pw_gid) != 0) {
      throw std::runtime_error("chown " + dir_->path() + " failed");
    }
  }
  run_command({bin_ + "/initdb", "-D", dir_->path() + "/data", "-U", "postgres", "--auth=trust",
               "-E", "UTF8", "--locale=C", "--no-sync"},
              user);
  start();
}

PgServer::~PgServer() {
  stop();
}

void PgServer::start() {
  proc_.spawn({bin_ + "/postgres", "-D", dir_->path() + "/data", "-p", std::to_string(port_), "-k",
               dir_->path(), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c",
               "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=200"},
              dir_->path() + "/postgres.log", pg_user(), dir_->path(), SIGINT);
  bool up = eventually(
      [&] {
        if (!proc_.running()) {
          throw std::runtime_error("postgres exited:\n" +
                                   read_file(dir_->path() + "/postgres.log"));
        }
        PGconn* c = PQconnectdb(conninfo().c_str());
        bool ok = PQstatus(c) == CONNECTION_OK;
        PQfinish(c);
        return ok;
      },
      std::chrono::seconds(30));
  if (!up) {
    throw std::runtime_error("postgres did not accept connections:\n" +
                             read_file(dir_->path() + "/postgres.log"));
  }
}

void PgServer::stop() {
  proc_.stop(SIGINT, 15000);
}

std::string PgServer::conninfo() const {
  return "host=127.0.0.1 port=" + std::to_string(port_) +
         " user=postgres dbname=postgres connect_timeout=5";
}

std::string PgServer::url() const {
  return "postgresql://postgres@127.0.0.1:" + std::to_string(port_) + "/postgres";
}

std::vector<std::string> PgServer::query(const std::string& sql) const {
  PGconn* c = PQconnectdb(conninfo().c_str());
  if (PQstatus(c) != CONNECTION_OK) {
    std::string e = PQerrorMessage(c);
    PQfinish(c);
    throw std::runtime_error("postgres connect: " + e);
  }
  PGresult* r = PQexec(c, sql.c_str());
  auto st = PQresultStatus(r);
  if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
    std::string e = PQresultErrorMessage(r);
    PQclear(r);
    PQfinish(c);
    throw std::runtime_error("postgres query failed: " + e + " in: " + sql);
  }
  std::vector<std::string> rows;
  for (int i = 0; i < PQntuples(r); ++i) {
    std::string row;
    for (int j = 0; j < PQnfields(r); ++j) {
      if (j > 0) {
        row += '\t';
      }
      row += PQgetisnull(r, i, j) ? "NULL" : PQgetvalue(r, i, j);
    }
    rows.push_back(std::move(row));
  }
  PQclear(r);
  PQfinish(c);
  return rows;
}

namespace {
std::unique_ptr<RedisServer>& redis_slot() {
  static std::unique_ptr<RedisServer> s;
  return s;
}
std::unique_ptr<PgServer>& pg_slot() {
  static std::unique_ptr<PgServer> s;
  return s;
}
}  // namespace

RedisServer& redis() {
  auto& s = redis_slot();
  if (!s) {
    s = std::make_unique<RedisServer>();
  }
  return *s;
}

PgServer& postgres() {
  auto& s = pg_slot();
  if (!s) {
    s = std::make_unique<PgServer>();
  }
  return *s;
}

void stop_shared_servers() {
  redis_slot().reset();
  pg_slot().reset();
}

}  // namespace tiertest
