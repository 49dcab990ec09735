#pragma once
// Test helpers: polling with a deadline (never a sleep that "waits for" work), per-test
// key prefixes that clean up, and a way to run any op through either transport.

#include <uv.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "tier/sync/client.hpp"
#include "tier/uv/async_client.hpp"

namespace tiertest {

/// Polls `pred` every few milliseconds until it is true or `timeout` passes.
bool eventually(const std::function<bool()>& pred,
                std::chrono::milliseconds timeout = std::chrono::seconds(5));

/// What a shell command did: its exit status (-1 when a signal ended it) and its stdout and
/// stderr together.
struct Shell {
  int status = -1;
  std::string out;
};

/// Runs `command` with /bin/sh and waits for it (the test side's blocking helper).
Shell shell(const std::string& command);

/// `s` single-quoted for the shell.
std::string shell_quote(const std::string& s);

/// Runs `work` in a forked child and in this process at the same time (the child is forked
/// first, before `work` starts any thread) and returns {here, there}; the child's result is
/// -1 when its `work` threw.
std::pair<int, int> in_two_processes(const std::function<int()>& work);

/// A key prefix unique to this test ("t:<n>:<name>:"); its keys are deleted (SCAN+UNLINK)
/// when it goes out of scope, like redis-plus-plus's KeyDeleter.
class TestKeys {
 public:
  explicit TestKeys(tier::Client& client, const std::string& name = "");
  ~TestKeys();
  const std::string& prefix() const { return prefix_; }
  std::string operator()(const std::string& key) const { return prefix_ + key; }

 private:
  tier::Client& client_;
  std::string prefix_;
};

/// A libuv loop owned by the test, driven until a condition holds.
class TestLoop {
 public:
  TestLoop();
  ~TestLoop();
  uv_loop_t* get() { return &loop_; }
  /// Runs the loop until `pred` is true or `timeout` passes; returns pred().
  bool run_until(const std::function<bool()>& pred,
                 std::chrono::milliseconds timeout = std::chrono::seconds(5));

 private:
  uv_loop_t loop_;
  uv_timer_t wake_;
};

/// Runs ops through the blocking Client or through an AsyncClient on a TestLoop, so one
/// test body checks both transports.
class Runner {
 public:
  enum class Kind { sync, async };
  Runner(Kind kind, const std::string& url);
  ~Runner();

  template <class T>
  tier::Result<T> run(tier::Op<T> op) {
    if (kind_ == Kind::sync) {
      return client_->try_run(op);
    }
    std::optional<tier::Result<T>> out;
    async_->run(std::move(op), [&](tier::Result<T> r) { out.emplace(std::move(r)); });
    loop_->run_until([&] { return out.has_value(); }, std::chrono::seconds(10));
    if (!out) {
      return tier::Error{tier::ErrorKind::timeout, "test runner: no callback within 10 s"};
    }
    return std::move(*out);
  }
  const char* name() const { return kind_ == Kind::sync ? "sync Client" : "AsyncClient"; }
  Kind kind() const { return kind_; }
  tier::Client* client() { return client_.get(); }
  tier::AsyncClient* async() { return async_.get(); }
  TestLoop* loop() { return loop_.get(); }

 private:
  Kind kind_;
  std::unique_ptr<tier::Client> client_;
  std::unique_ptr<TestLoop> loop_;
  std::unique_ptr<tier::AsyncClient> async_;
};

}  // namespace tiertest
