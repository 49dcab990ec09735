// tierctl lock: runs of a command under a lock never overlap, fences grow, a lock held
// elsewhere is exit 6, and a lost lock stops the command (exit 7).

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/cli_runner.hpp"
#include "support/helpers.hpp"
#include "support/servers.hpp"
#include "tier/lock.hpp"

using tiertest::CliProcess;
using tiertest::describe;
using tiertest::tierctl;
using tiertest::with;
using Json = nlohmann::json;

TEST_CASE("tierctl lock run: 10 concurrent runs never overlap and fences grow") {
  tiertest::TestKeys keys(tiertest::redis().client(), "cli_lock");
  tiertest::TempDir dir("lock");
  // The command fails (exit 9) if another copy is inside.
  const std::string script = "mkdir '" + dir.path() +
                             "/inside' || exit 9; echo $TIER_LOCK_FENCE >> '" + dir.path() +
                             "/fences'; sleep 0.05; rmdir '" + dir.path() + "/inside'";
  std::vector<std::unique_ptr<CliProcess>> procs;
  for (int i = 0; i < 10; ++i) {
    procs.push_back(std::make_unique<CliProcess>(
        with(keys, {"lock", "run", "job", "--wait", "30s", "--", "sh", "-c", script})));
  }
  for (auto& p : procs) {
    auto r = p->wait(std::chrono::seconds(60));
    INFO(describe(r));
    CHECK(r.exit_code == 0);
  }
  std::ifstream in(dir.path() + "/fences");
  std::vector<long> fences;
  for (long f; in >> f;) {
    fences.push_back(f);
  }
  REQUIRE(fences.size() == 10);
  for (std::size_t i = 1; i < fences.size(); ++i) {
    CHECK(fences[i] > fences[i - 1]);
  }
  auto status = tierctl(with(keys, {"--json", "lock", "status", "job"}));
  REQUIRE(status.exit_code == 0);
  CHECK(Json::parse(status.out)["held"] == false);
  CHECK(Json::parse(status.out)["last_fence"] == fences.back());
}

TEST_CASE("tierctl lock run: held elsewhere is exit 6; a lost lock stops the command (7)") {
  auto& redis = tiertest::redis();
  tiertest::TestKeys keys(redis.client(), "cli_lock_lost");
  tiertest::TempDir dir("lock-lost");
  tier::Locks locks(keys.prefix());
  REQUIRE(redis.client()
              .run(locks.try_acquire("busy", "someone", std::chrono::milliseconds(60000)))
              .acquired);
  const std::string marker = dir.path() + "/started";
  auto r = tierctl(with(keys, {"lock", "run", "busy", "--", "touch", marker}));
  INFO(describe(r));
  CHECK(r.exit_code == 6);
  struct stat st {};
  CHECK(::stat(marker.c_str(), &st) != 0);  // COMMAND never started
  CHECK(tierctl(with(keys, {"lock", "release", "busy", "--token", "wrong"})).exit_code == 1);

  // Taken over while the command runs: the renewal is refused, the command is stopped.
  CliProcess run(with(keys, {"lock", "run", "long", "--lease", "600ms", "--grace", "2s", "--", "sh",
                             "-c", "touch '" + marker + "'; exec sleep 30"}));
  REQUIRE(tiertest::eventually([&] { return ::stat(marker.c_str(), &st) == 0; },
                               std::chrono::seconds(10)));
  redis.client().run(tier::raw({"SET", keys.prefix() + "lock:{long}", "thief"}));
  const auto start = std::chrono::steady_clock::now();
  auto lost = run.wait(std::chrono::seconds(20));
  INFO(describe(lost));
  CHECK(lost.exit_code == 7);
  CHECK(lost.err.find("was lost") != std::string::npos);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
  CHECK(redis.client().run(tier::raw({"GET", keys.prefix() + "lock:{long}"})).str == "thief");
}
