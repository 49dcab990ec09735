#include "helpers.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <stdexcept>

#include <atomic>
#include <cctype>
#include <cstdio>
#include <thread>

#include "tier/keys.hpp"
#include "tier/sync/scan_delete.hpp"

namespace tiertest {

bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (pred()) {
      return true;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // poll interval, not a wait
  }
}

TestKeys::TestKeys(tier::Client& client, const std::string& name) : client_(client) {
  static std::atomic<int> counter{0};
  std::string clean;
  for (char c : name) {
    clean.push_back(std::isalnum(static_cast<unsigned char>(c)) ? c : '_');
  }
  prefix_ = "t:" + std::to_string(++counter) + ":" + clean.substr(0, 40) + ":";
}

TestKeys::~TestKeys() {
  try {
    tier::delete_by_pattern(client_, tier::glob_escape(prefix_) + "*");
  } catch (...) {  // a stopped server in a fault test: nothing to clean
  }
}

TestLoop::TestLoop() {
  uv_loop_init(&loop_);
  uv_timer_init(&loop_, &wake_);
}

TestLoop::~TestLoop() {
  uv_close(reinterpret_cast<uv_handle_t*>(&wake_), nullptr);
  // Let every closing handle finish, then close the loop.
  for (int i = 0; i < 1000 && uv_loop_close(&loop_) == UV_EBUSY; ++i) {
    uv_walk(
        &loop_,
        [](uv_handle_t* h, void*) {
          if (!uv_is_closing(h)) {
            uv_close(h, nullptr);
          }
        },
        nullptr);
    uv_run(&loop_, UV_RUN_NOWAIT);
  }
}

bool TestLoop::run_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  // The wake timer bounds each loop iteration so the condition and deadline are checked.
  uv_timer_start(
      &wake_, [](uv_timer_t*) {}, 2, 2);
  while (!pred() && std::chrono::steady_clock::now() < deadline) {
    uv_run(&loop_, UV_RUN_ONCE);
  }
  uv_timer_stop(&wake_);
  return pred();
}

Runner::Runner(Kind kind, const std::string& url) : kind_(kind) {
  tier::ClientOptions o;
  o.endpoint = tier::RedisEndpoint::parse(url);
  client_ = std::make_unique<tier::Client>(o);
  if (kind == Kind::async) {
    loop_ = std::make_unique<TestLoop>();
    tier::AsyncOptions ao;
    ao.endpoint = o.endpoint;
    async_ = std::make_unique<tier::AsyncClient>(loop_->get(), ao);
    async_->start();
  }
}

Runner::~Runner() {
  if (async_) {
    async_->close();
    async_.reset();
  }
}

std::pair<int, int> in_two_processes(const std::function<int()>& work) {
  int fds[2];
  if (::pipe(fds) != 0) {
    throw std::runtime_error("in_two_processes: pipe failed");
  }
  const pid_t child = ::fork();
  if (child < 0) {
    throw std::runtime_error("in_two_processes: fork failed");
  }
  if (child == 0) {
    ::close(fds[0]);
    int n = -1;
    try {
      n = work();
    } catch (...) {
    }
    (void)!::write(fds[1], &n, sizeof n);
    ::_exit(0);
  }
  ::close(fds[1]);
  const int here = work();
  int there = -1;
  if (::read(fds[0], &there, sizeof there) != sizeof there) {
    there = -1;
  }
  ::close(fds[0]);
  ::waitpid(child, nullptr, 0);
  return {here, there};
}

Shell shell(const std::string& command) {
  Shell r;
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) {
    r.out = "popen failed";
    return r;
  }
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) {
    r.out.append(buf, n);
  }
  const int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'') {
      q += "'\\''";
    } else {
      q += c;
    }
  }
  return q + "'";
}

}  // namespace tiertest
