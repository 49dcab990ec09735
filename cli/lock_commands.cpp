// lock run / status / release: distributed locks (docs/locks.md) from the shell, through the
// same script as the library (core/lua/lock.lua).

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <iostream>
#include <mutex>
#include <thread>

#include "context.hpp"
#include "tier/errors.hpp"
#include "tier/numbers.hpp"
#include "tier/sync/lock.hpp"

namespace tierctl {
namespace {

std::chrono::milliseconds duration_arg(const std::string& text, const char* what) {
  auto d = tier::parse_duration(text);
  if (!d) {
    throw tier::InvalidArgument(std::string(what) + " '" + text +
                                "': a positive duration (500ms, 60s, 1m, 1h, 1d)");
  }
  return *d;
}

/// Runs COMMAND with the lock's name and fence in its environment; stops it (SIGTERM, then
/// SIGKILL after `grace`) when the lock is lost. Returns COMMAND's exit status, or -1 when
/// it had to be stopped.
int run_under(tier::Lock& lock, const std::atomic<bool>& lost,
              const std::vector<std::string>& command, std::chrono::milliseconds grace) {
  const pid_t pid = ::fork();
  if (pid < 0) {
    throw tier::IoError(std::string("lock run: fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    ::setenv("TIER_LOCK_NAME", lock.name().c_str(), 1);
    ::setenv("TIER_LOCK_FENCE", std::to_string(lock.fence()).c_str(), 1);
    std::vector<char*> argv;
    for (const auto& s : command) {
      argv.push_back(const_cast<char*>(s.c_str()));
    }
    argv.push_back(nullptr);
    ::execvp(argv[0], argv.data());
    std::fprintf(stderr, "tierctl: lock run: cannot run %s: %s\n", argv[0], std::strerror(errno));
    ::_exit(127);
  }
  // Watches for the loss (checked every 20 ms): SIGTERM, then SIGKILL after the grace period.
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  std::thread killer([&] {
    std::unique_lock l(m);
    while (!cv.wait_for(l, std::chrono::milliseconds(20), [&] { return done; })) {
      if (lost) {
        ::kill(pid, SIGTERM);
        if (!cv.wait_for(l, grace, [&] { return done; })) {
          ::kill(pid, SIGKILL);
        }
        return;
      }
    }
  });
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  {
    std::lock_guard l(m);
    done = true;
  }
  cv.notify_all();
  killer.join();
  if (lost) {
    return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

void add_lock_commands(CLI::App& app, Context& ctx) {
  auto* lk = app.add_subcommand("lock", "Distributed locks with fencing tokens");
  lk->require_subcommand(1);
  lk->footer(
      "Keys: lock:{NAME} (the holder's token) and lock:{NAME}:fence (the fencing counter).\n\n" +
      std::string(kExitCodesHelp));
  {
    struct Args {
      std::string name;
      std::string lease = "30s";
      std::string wait = "0ms";
      std::string grace = "10s";
    };
    auto a = std::make_shared<Args>();
    auto* cmd = lk->add_subcommand(
        "run", "Take the lock, run COMMAND under it (renewing the lease), release it");
    cmd->add_option("NAME", a->name, "Lock name")->required();
    cmd->add_option("--lease", a->lease, "Lease, renewed at a third")->capture_default_str();
    cmd->add_option("--wait", a->wait, "How long to wait for the current holder")
        ->capture_default_str();
    cmd->add_option("--grace", a->grace, "After SIGTERM on a lost lock, SIGKILL after this")
        ->capture_default_str();
    cmd->footer(
        "Usage: tierctl lock run NAME [--lease 30s] [--wait 0ms] -- COMMAND [ARGS...]\n"
        "COMMAND gets TIER_LOCK_NAME and TIER_LOCK_FENCE (the fencing token). tierctl exits "
        "with COMMAND's status; 6 when the lock was not acquired within --wait (COMMAND not "
        "started); 7 when the lock was lost while COMMAND ran (COMMAND got SIGTERM, then "
        "SIGKILL after --grace).\n\n" +
        std::string(kExitCodesHelp));
    ctx.on_run(cmd, [&ctx, a] {
      if (ctx.passthrough.empty()) {
        throw tier::InvalidArgument("lock run takes NAME, then -- COMMAND [ARGS...]");
      }
      const auto lease = duration_arg(a->lease, "--lease");
      const auto grace = duration_arg(a->grace, "--grace");
      const auto wait = a->wait == "0ms" || a->wait == "0" ? std::chrono::milliseconds(0)
                                                           : duration_arg(a->wait, "--wait");
      tier::Locks locks(ctx.options.prefix);
      std::atomic<bool> lost{false};
      auto lock =
          tier::Lock::acquire(ctx.client(), locks, a->name,
                              {.lease = lease, .wait = wait, .on_lost = [&] { lost = true; }});
      if (!lock) {
        std::cerr << "tierctl: lock '" << a->name << "' is held by another holder\n";
        return static_cast<int>(kNotAcquired);
      }
      const int status = run_under(*lock, lost, ctx.passthrough, grace);
      lock->release();
      if (status < 0) {
        std::cerr << "tierctl: lock '" << a->name << "' was lost; the command was stopped\n";
        return static_cast<int>(kLockLost);
      }
      return status;
    });
  }
  {
    auto name = std::make_shared<std::string>();
    auto* cmd = lk->add_subcommand("status", "Holder present, remaining lease, last fence");
    cmd->add_option("NAME", *name, "Lock name")->required();
    ctx.on_run(cmd, [&ctx, name] {
      tier::Locks locks(ctx.options.prefix);
      const tier::LockStatus s = ctx.client().run(locks.status(*name));
      if (ctx.options.json) {
        Context::print_json(
            {{"held", s.held}, {"ttl_ms", s.ttl.count()}, {"last_fence", s.last_fence}});
      } else {
        std::cout << (s.held ? "held" : "free") << " ttl_ms=" << s.ttl.count()
                  << " last_fence=" << s.last_fence << '\n';
      }
      return kOk;
    });
  }
  {
    struct Args {
      std::string name;
      std::string token;
    };
    auto a = std::make_shared<Args>();
    auto* cmd = lk->add_subcommand("release", "Release a lock held with this token (operators)");
    cmd->add_option("NAME", a->name, "Lock name")->required();
    cmd->add_option("--token", a->token, "The holder's token")->required();
    ctx.on_run(cmd, [&ctx, a] {
      tier::Locks locks(ctx.options.prefix);
      const bool released = ctx.client().run(locks.release(a->name, a->token));
      if (ctx.options.json) {
        Context::print_json({{"released", released}});
      } else {
        std::cout << (released ? "released\n" : "not held with this token\n");
      }
      return released ? kOk : kNotFound;
    });
  }
}

}  // namespace tierctl
