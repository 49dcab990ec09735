// The container image (deploy/Containerfile), built with podman and run against the suite's
// Redis and PostgreSQL on the host network: it becomes ready, its HEALTHCHECK passes, it
// runs as a non-root user, persists a write-behind row, logs JSON lines, and exits 0 within
// the drain deadline on `podman stop`. Its size is reported.

#include <sys/stat.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "daemon/tierd_process.hpp"
#include "support/helpers.hpp"
#include "support/servers.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;

using tiertest::shell_quote;

tiertest::Shell sh(const std::string& cmd) {
  return tiertest::shell(cmd);
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) {
    s.pop_back();
  }
  return s;
}

const char* const kRunFlags =
    "--runtime runc --ulimit nofile=4096:4096 --ulimit nproc=4096:4096 --network host";

/// A container removed at the end, whatever happened.
struct Container {
  std::string name;
  ~Container() { sh("podman rm -f -t 0 " + name + " >/dev/null"); }
};

}  // namespace

TEST_CASE("container image: ready, healthy, non-root, writes behind, JSON logs, stops with 0") {
  REQUIRE(sh("command -v podman").status == 0);
  const std::string tag = "localhost/tierd:suite-" + std::to_string(::getpid());
  const auto build_start = Clock::now();
  const tiertest::Shell built =
      sh("bash " + std::string(TIERD_SOURCE_DIR) + "/deploy/build-image.sh " + tag);
  INFO(built.out);
  REQUIRE(built.status == 0);
  const auto build_s =
      std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - build_start).count();
  const std::string size = trim(sh("podman image inspect --format '{{.Size}}' " + tag).out);
  WARN("image " << tag << ": " << std::stoll(size) / (1024 * 1024) << " MiB, built in " << build_s
                << " s");
  struct Untag {
    std::string tag;
    ~Untag() { sh("podman rmi -f " + tag + " >/dev/null"); }
  } untag{tag};

  // Labels and the image's own settings.
  const Json config =
      Json::parse(sh("podman image inspect --format '{{json .Config}}' " + tag).out);
  CHECK(config["User"] == "10001:10001");
  CHECK(config["StopSignal"] == "SIGTERM");
  CHECK(config["Labels"]["org.opencontainers.image.version"] == "0.1.0");
  CHECK(config["Labels"].contains("org.opencontainers.image.source"));
  CHECK(config["Entrypoint"][0] == "/usr/local/bin/tierd");
  CHECK(sh("podman image inspect --format '{{json .HealthCheck}}' " + tag).out.find("--probe") !=
        std::string::npos);

  // The suite's servers, a table, and a config mounted where the image reads it.
  tier::Client& redis = tiertest::redis().client();
  tiertest::TestKeys keys(redis, "container");
  auto& pg = tiertest::postgres();
  pg.query(
      "DROP TABLE IF EXISTS ctr_rows; CREATE TABLE ctr_rows(id text PRIMARY KEY, "
      "payload jsonb, version bigint)");
  tiertest::TempDir dir("container");
  ::chmod(dir.path().c_str(), 0755);
  const int port = tiertest::free_port();
  {
    std::ofstream f(dir.path() + "/tierd.yaml");
    f << "http:\n  listen: 127.0.0.1:" << port << "\nnamespace: \"" << keys.prefix()
      << "\"\nshutdown_timeout_ms: 5000\nhandlers:\n"
         "  - type: invalidate\n    on: [\"system:cache_invalidation\"]\n"
         "  - type: write_behind\n    on: [\"system:write_behind_flush\"]\n"
         "    tables:\n      - {name: ctr_rows, key_columns: [id], columns: [payload], "
         "version_column: version, max_delay_ms: 50}\n";
  }
  ::chmod((dir.path() + "/tierd.yaml").c_str(), 0644);
  Container c{"tierd-suite-" + std::to_string(::getpid())};
  const tiertest::Shell run = sh("podman run -d --name " + c.name + " " + kRunFlags +
                                 " -e TIERD_REDIS_URL=" + shell_quote(tiertest::redis().url()) +
                                 " -e TIERD_POSTGRES_URL=" + shell_quote(pg.url()) + " -v " +
                                 dir.path() + ":/etc/tierd:ro " + tag);
  INFO(run.out);
  REQUIRE(run.status == 0);
  const auto logs = [&] { return sh("podman logs " + c.name).out; };
  INFO(logs());

  REQUIRE(
      tiertest::eventually([&] { return tiertest::http_get(port, "/readyz").status == 200; }, 30s));
  CHECK(sh("podman healthcheck run " + c.name).status == 0);
  CHECK(trim(sh("podman exec " + c.name + " id -u").out) == "10001");
  CHECK(trim(sh("podman exec " + c.name + " id -g").out) == "10001");

  // A row written behind from the host reaches PostgreSQL through the container.
  const std::string row = R"({"id":"r1","payload":{"from":"container test"}})";
  const tiertest::Shell enq =
      sh(std::string(TIERCTL_PATH) + " --redis " + shell_quote(tiertest::redis().url()) +
         " --prefix " + shell_quote(keys.prefix()) + " wb enqueue ctr_rows " + shell_quote(row) +
         " --version 1");
  INFO(enq.out);
  REQUIRE(enq.status == 0);
  REQUIRE(tiertest::eventually(
      [&] { return pg.query("SELECT payload->>'from' FROM ctr_rows WHERE id = 'r1'").size() == 1; },
      20s));
  CHECK(pg.query("SELECT payload->>'from' FROM ctr_rows WHERE id = 'r1'")[0] == "container test");

  // Its resident memory, for the Kubernetes example's requests.
  const std::string pid = trim(sh("podman inspect --format '{{.State.Pid}}' " + c.name).out);
  std::ifstream status("/proc/" + pid + "/status");
  std::string field;
  long rss_kb = 0;
  while (status >> field) {
    if (field == "VmRSS:") {
      status >> rss_kb;
      break;
    }
  }
  CHECK(rss_kb > 0);
  WARN("tierd in the container: " << rss_kb / 1024.0 << " MiB resident");

  // Logs are JSON lines.
  std::istringstream lines(logs());
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    const auto j = Json::parse(line, nullptr, false);
    INFO(line);
    CHECK(j.is_object());
    ++n;
  }
  CHECK(n >= 3);

  // podman stop sends SIGTERM (the image's STOPSIGNAL); tierd drains and exits 0 well within
  // its 5 s shutdown deadline, before podman's 20 s would send SIGKILL.
  const auto stop_start = Clock::now();
  REQUIRE(sh("podman stop -t 20 " + c.name).status == 0);
  const auto stop_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - stop_start).count();
  WARN("podman stop took " << stop_ms << " ms");
  CHECK(trim(sh("podman inspect --format '{{.State.ExitCode}}' " + c.name).out) == "0");
  CHECK(stop_ms < 5000);
  CHECK(logs().find("stopped") != std::string::npos);
}
