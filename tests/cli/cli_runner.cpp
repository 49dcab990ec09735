#include "cli_runner.hpp"

#include "support/helpers.hpp"
#include "support/servers.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <stdexcept>

namespace tiertest {
namespace {

void make_pipe(int fds[2]) {
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    throw std::runtime_error("pipe2 failed");
  }
}

}  // namespace

CliProcess::CliProcess(const std::vector<std::string>& args, const std::string& input,
                       const CliEnv& env, bool stderr_tty) {
  int in[2];
  int out[2];
  int err[2];
  make_pipe(in);
  make_pipe(out);
  if (stderr_tty) {
    // err[0] is the terminal's master side (read by us), err[1] the child's stderr.
    if (::openpty(&err[0], &err[1], nullptr, nullptr, nullptr) != 0) {
      throw std::runtime_error("openpty failed");
    }
    ::fcntl(err[0], F_SETFD, FD_CLOEXEC);
    ::fcntl(err[1], F_SETFD, FD_CLOEXEC);
  } else {
    make_pipe(err);
  }
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    throw std::runtime_error("fork failed");
  }
  if (pid == 0) {
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) {
      _exit(125);
    }
    // The test decides what the child sees, not the developer's shell.
    for (const char* name : {"TIERD_REDIS_URL", "TIERD_REDIS_PASSWORD", "REDISCLI_AUTH"}) {
      ::unsetenv(name);
    }
    for (const auto& [name, value] : env) {
      if (value.empty()) {
        ::unsetenv(name.c_str());
      } else {
        ::setenv(name.c_str(), value.c_str(), 1);
      }
    }
    std::vector<char*> argv;
    std::string path = TIERCTL_PATH;
    argv.push_back(path.data());
    for (const auto& a : args) {
      argv.push_back(const_cast<char*>(a.c_str()));
    }
    argv.push_back(nullptr);
    ::execv(path.c_str(), argv.data());
    _exit(127);
  }
  pid_ = pid;
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  out_ = out[0];
  err_ = err[0];
  // Inputs in the tests are small (well under the pipe buffer), so this cannot block.
  std::size_t done = 0;
  while (done < input.size()) {
    ssize_t n = ::write(in[1], input.data() + done, input.size() - done);
    if (n <= 0) {
      break;
    }
    done += static_cast<std::size_t>(n);
  }
  ::close(in[1]);
}

CliProcess::~CliProcess() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  if (out_ >= 0) {
    ::close(out_);
  }
  if (err_ >= 0) {
    ::close(err_);
  }
}

bool CliProcess::pump(std::chrono::steady_clock::time_point until) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      until - std::chrono::steady_clock::now());
  if (left.count() <= 0) {
    return false;
  }
  pollfd fds[2] = {{out_, POLLIN, 0}, {err_, POLLIN, 0}};
  int n = ::poll(fds, 2, static_cast<int>(left.count()));
  if (n < 0 && errno == EINTR) {
    return true;
  }
  for (int i = 0; i < 2; ++i) {
    int& fd = i == 0 ? out_ : err_;
    if (fd < 0 || (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) {
      continue;
    }
    char buf[4096];
    ssize_t got = ::read(fd, buf, sizeof buf);
    if (got > 0) {
      (i == 0 ? result_.out : result_.err).append(buf, static_cast<std::size_t>(got));
    } else if (got < 0 && errno == EINTR) {
      continue;
    } else {  // 0 = end of a pipe; EIO = a terminal whose other side is closed
      ::close(fd);
      fd = -1;
    }
  }
  return true;
}

bool CliProcess::wait_for_output(const std::string& text, std::chrono::milliseconds deadline) {
  auto end = std::chrono::steady_clock::now() + deadline;
  while (result_.out.find(text) == std::string::npos) {
    if (out_ < 0 || !pump(end)) {
      return false;
    }
  }
  return true;
}

CliResult CliProcess::wait(std::chrono::milliseconds deadline) {
  auto end = std::chrono::steady_clock::now() + deadline;
  while (out_ >= 0 || err_ >= 0) {
    if (!pump(end)) {
      result_.timed_out = true;
      ::kill(pid_, SIGKILL);
      break;
    }
  }
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  if (!result_.timed_out && WIFEXITED(status)) {
    result_.exit_code = WEXITSTATUS(status);
  }
  return result_;
}

CliResult tierctl(const std::vector<std::string>& args, const std::string& input,
                  const CliEnv& env) {
  CliProcess p(args, input, env);
  return p.wait();
}

std::vector<std::string> with(const TestKeys& keys, std::vector<std::string> args) {
  std::vector<std::string> out{"--redis", redis().url(), "--prefix", keys.prefix()};
  out.insert(out.end(), args.begin(), args.end());
  return out;
}

std::string describe(const CliResult& r) {
  return "exit " + std::to_string(r.exit_code) + (r.timed_out ? " (timed out)" : "") +
         "\nstdout: " + r.out + "\nstderr: " + r.err;
}

}  // namespace tiertest
