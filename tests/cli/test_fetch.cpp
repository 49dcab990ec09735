// tierctl fetch: cache-aside from a shell, single-flight across processes.

#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/cli_runner.hpp"
#include "support/helpers.hpp"
#include "support/servers.hpp"

using tiertest::CliProcess;
using tiertest::describe;
using tiertest::tierctl;
using tiertest::with;
using Json = nlohmann::json;

TEST_CASE("tierctl fetch: 20 concurrent callers run the command once and print its value") {
  tiertest::TestKeys keys(tiertest::redis().client(), "cli_fetch");
  tiertest::TempDir dir("fetch");
  const std::string log = dir.path() + "/runs";
  // The command notes each run and takes a moment, as a slow report would.
  const std::string script = "echo run >> '" + log + "'; sleep 0.3; echo '{\"report\": [1, 2, 3]}'";
  std::vector<std::unique_ptr<CliProcess>> procs;
  for (int i = 0; i < 20; ++i) {
    procs.push_back(std::make_unique<CliProcess>(
        with(keys, {"fetch", "--tier", "project", "p-42", "report", "--", "sh", "-c", script})));
  }
  for (auto& p : procs) {
    auto r = p->wait(std::chrono::seconds(30));
    INFO(describe(r));
    REQUIRE(r.exit_code == 0);
    CHECK(Json::parse(r.out) == Json{{"report", {1, 2, 3}}});
  }
  std::ifstream in(log);
  int runs = 0;
  for (std::string line; std::getline(in, line);) {
    ++runs;
  }
  CHECK(runs == 1);
  // A later call is a hit: the command does not run again.
  auto hit = tierctl(with(keys, {"fetch", "--tier", "project", "p-42", "report", "--", "false"}));
  CHECK(hit.exit_code == 0);
}

TEST_CASE("tierctl fetch: a failing command stores nothing and passes its status on") {
  tiertest::TestKeys keys(tiertest::redis().client(), "cli_fetch_fail");
  auto r =
      tierctl(with(keys, {"fetch", "--tier", "session", "s-1", "k", "--", "sh", "-c", "exit 7"}));
  INFO(describe(r));
  CHECK(r.exit_code == 7);
  CHECK(r.err.find("status 7") != std::string::npos);
  CHECK(tiertest::redis().client().run(tier::raw({"EXISTS", keys("session:s-1:k")})).integer == 0);

  auto not_json =
      tierctl(with(keys, {"fetch", "--tier", "session", "s-1", "k", "--", "echo", "hi"}));
  CHECK(not_json.exit_code == 2);
  CHECK(not_json.err.find("not JSON") != std::string::npos);

  auto no_command = tierctl(with(keys, {"fetch", "--tier", "session", "s-1", "k"}));
  CHECK(no_command.exit_code == 2);
  // A command that works stores the value with the --ttl given.
  auto ok = tierctl(
      with(keys, {"fetch", "--tier", "session", "s-1", "k", "--ttl", "2m", "--", "echo", "[1]"}));
  CHECK(ok.exit_code == 0);
  CHECK(ok.out == "[1]\n");
  CHECK(tiertest::redis().client().run(tier::raw({"TTL", keys("session:s-1:k")})).integer > 100);
}
