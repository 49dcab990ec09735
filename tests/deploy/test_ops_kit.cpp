// The operations kit beside the image: the Prometheus alerting rules pass `promtool check
// rules` and their unit tests (`promtool test rules`); the rules and the Grafana dashboard
// name only metrics that tierd exports, read from the /metrics of a real tierd running the
// example config with every handler type; the Kubernetes and compose examples carry configs
// that tierd accepts, and timings that let it drain.

#include <sys/wait.h>

#include <catch2/catch.hpp>

#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

#include "config/config.hpp"
#include "daemon/tierd_process.hpp"
#include "handlers/registry.hpp"
#include "support/helpers.hpp"
#include "support/servers.hpp"

namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

const std::string kSource = TIERD_SOURCE_DIR;

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

tiertest::Shell sh(const std::string& cmd) {
  return tiertest::shell(cmd);
}

// The series names tierd exports: every family's TYPE line, with a histogram's suffixes.
std::set<std::string> exported_names() {
  auto& pg = tiertest::postgres();
  pg.query(read_file(kSource + "/scripts/demo_schema.sql"));
  tiertest::TempDir dir("opskit");
  const std::string yaml = dir.path() + "/tierd.yaml";
  {
    std::ofstream f(yaml);
    f << read_file(kSource + "/config/tierd.example.yaml")
      << "  - type: provider_health\n    on: [\"system:health_check\"]\n    providers:\n"
         "      - {name: local, url: \"http://127.0.0.1:1/health\", interval_s: 3600}\n"
         "  - type: count\n    on: [\"events:counted\"]\n";
  }
  const int port = tiertest::free_port();
  for (const auto& [k, v] : std::vector<std::pair<std::string, std::string>>{
           {"TIERD_REDIS_URL", tiertest::redis().url()},
           {"TIERD_POSTGRES_URL", pg.url()},
           {"TIERD_HTTP_LISTEN", "127.0.0.1:" + std::to_string(port)}}) {
    ::setenv(k.c_str(), v.c_str(), 1);
  }
  tiertest::Process tierd;
  tierd.spawn({TIERD_PATH, "--config", yaml}, dir.path() + "/tierd.log");
  for (const char* k : {"TIERD_REDIS_URL", "TIERD_POSTGRES_URL", "TIERD_HTTP_LISTEN"}) {
    ::unsetenv(k);
  }
  REQUIRE(
      tiertest::eventually([&] { return tiertest::http_get(port, "/readyz").status == 200; }, 10s));
  // The dispatcher's message families appear with the first message.
  tier::Client& redis = tiertest::redis().client();
  redis.run(tier::raw({"PUBLISH", "events:counted", "{}"}));
  redis.run(tier::raw({"PUBLISH", "events:counted", "not json"}));
  REQUIRE(tiertest::eventually(
      [&] {
        return tiertest::http_get(port, "/metrics").body.find("tierd_messages_rejected_total") !=
               std::string::npos;
      },
      5s));
  const std::string metrics = tiertest::http_get(port, "/metrics").body;
  std::set<std::string> names;
  std::istringstream in(metrics);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string hash, kind, name, type;
    words >> hash >> kind >> name >> type;
    if (hash == "#" && kind == "TYPE") {
      names.insert(name);
      if (type == "histogram") {
        for (const char* s : {"_bucket", "_sum", "_count"}) {
          names.insert(name + s);
        }
      }
    }
  }
  return names;
}

// Every tierd_* identifier in a PromQL expression.
std::set<std::string> names_in(const std::string& expr) {
  static const std::regex metric(R"(\btierd_[a-z0-9_]+)");
  std::set<std::string> out;
  for (auto it = std::sregex_iterator(expr.begin(), expr.end(), metric);
       it != std::sregex_iterator(); ++it) {
    out.insert(it->str());
  }
  return out;
}

void collect_exprs(const Json& j, std::vector<std::string>& out) {
  if (j.is_object()) {
    for (const auto& [k, v] : j.items()) {
      if ((k == "expr" || k == "query") && v.is_string()) {
        out.push_back(v.get<std::string>());
      } else {
        collect_exprs(v, out);
      }
    }
  } else if (j.is_array()) {
    for (const auto& v : j) {
      collect_exprs(v, out);
    }
  }
}

}  // namespace

TEST_CASE("ops kit: rules pass promtool, and rules and dashboard use only exported metrics") {
  const std::string rules = kSource + "/deploy/prometheus/tierd-rules.yml";
  const std::string tests = kSource + "/deploy/prometheus/tierd-rules.test.yml";
  {
    const tiertest::Shell check = sh("promtool check rules " + rules);
    INFO(check.out);
    CHECK(check.status == 0);
  }
  {
    const tiertest::Shell test =
        sh("cd " + kSource + "/deploy/prometheus && promtool test rules " + tests);
    INFO(test.out);
    CHECK(test.status == 0);
  }

  const std::set<std::string> exported = exported_names();
  REQUIRE(exported.count("tierd_redis_link_up") == 1);
  REQUIRE(exported.count("tierd_writebehind_oldest_pending_seconds") == 1);

  // The rules: every alert's expression.
  std::vector<std::string> exprs;
  int alerts = 0;
  for (const auto& group : YAML::LoadFile(rules)["groups"]) {
    for (const auto& rule : group["rules"]) {
      exprs.push_back(rule["expr"].as<std::string>());
      alerts += rule["alert"] ? 1 : 0;
    }
  }
  CHECK(alerts >= 8);
  // The dashboard: every panel target's expression.
  const Json dashboard = Json::parse(read_file(kSource + "/deploy/grafana/tierd.json"));
  std::vector<std::string> panel_exprs;
  collect_exprs(dashboard, panel_exprs);
  CHECK(panel_exprs.size() >= 10);
  exprs.insert(exprs.end(), panel_exprs.begin(), panel_exprs.end());
  std::set<std::string> used;
  for (const auto& e : exprs) {
    for (const auto& n : names_in(e)) {
      used.insert(n);
      INFO("expression: " << e);
      CHECK(exported.count(n) == 1);
    }
  }
  CHECK(used.size() >= 10);
}

namespace {

tierd::EnvLookup env_of(const std::map<std::string, std::string>& vars) {
  return [vars](const char* name) -> std::optional<std::string> {
    const auto it = vars.find(name);
    return it == vars.end() ? std::nullopt : std::optional<std::string>(it->second);
  };
}

// "20s" / "1m30s" (compose durations as used here) in milliseconds.
long long compose_ms(const std::string& d) {
  long long total = 0;
  long long n = 0;
  for (char c : d) {
    if (c >= '0' && c <= '9') {
      n = n * 10 + (c - '0');
    } else {
      total += c == 'm' ? n * 60000 : c == 's' ? n * 1000 : 0;
      n = 0;
    }
  }
  return total;
}

}  // namespace

TEST_CASE("ops kit: the Kubernetes example's config is valid and its timings fit tierd's") {
  const std::string dir = kSource + "/deploy/k8s/";
  const YAML::Node cm = YAML::LoadFile(dir + "configmap.yaml");
  const YAML::Node deploy = YAML::LoadFile(dir + "deployment.yaml");
  const YAML::Node secret = YAML::LoadFile(dir + "secret.example.yaml");
  const YAML::Node pod = deploy["spec"]["template"]["spec"];
  const YAML::Node c = pod["containers"][0];

  // The environment the Deployment gives, with the Secret's values.
  std::map<std::string, std::string> env;
  for (const auto& e : c["env"]) {
    if (e["value"]) {
      env[e["name"].as<std::string>()] = e["value"].as<std::string>();
    } else {
      const auto key = e["valueFrom"]["secretKeyRef"]["key"].as<std::string>();
      REQUIRE(secret["stringData"][key]);  // every secret key the Deployment names exists
      env[e["name"].as<std::string>()] = secret["stringData"][key].as<std::string>();
    }
  }
  CHECK(env.count("TIERD_REDIS_PASSWORD") == 1);
  CHECK(env.count("PGPASSWORD") == 1);
  // The ConfigMap's file passes tierd's own validation, as --check-config would run it.
  const tierd::Config config = tierd::parse_config(cm["data"]["tierd.yaml"].as<std::string>(),
                                                   "configmap.yaml", env_of(env));
  CHECK_NOTHROW(tierd::resolve(config, env_of(env)));
  CHECK(config.http_host == "0.0.0.0");
  // SIGKILL comes only after tierd's own drain deadline.
  CHECK(pod["terminationGracePeriodSeconds"].as<long long>() * 1000 >
        config.shutdown_timeout.count());
  CHECK(c["livenessProbe"]["httpGet"]["path"].as<std::string>() == "/healthz");
  CHECK(c["readinessProbe"]["httpGet"]["path"].as<std::string>() == "/readyz");
  CHECK(c["ports"][0]["containerPort"].as<int>() == config.http_port);
  CHECK(pod["securityContext"]["runAsUser"].as<int>() == 10001);  // the image's user
  CHECK(c["volumeMounts"][0]["mountPath"].as<std::string>() == "/etc/tierd");
  CHECK(c["args"][1].as<std::string>() == "/etc/tierd/tierd.yaml");
}

TEST_CASE("ops kit: the compose file gates tierd on healthy servers and gives it time to drain") {
  const YAML::Node compose = YAML::LoadFile(kSource + "/deploy/compose.yaml");
  const YAML::Node t = compose["services"]["tierd"];
  for (const char* dep : {"redis", "postgres"}) {
    INFO(dep);
    CHECK(t["depends_on"][dep]["condition"].as<std::string>() == "service_healthy");
    CHECK(compose["services"][dep]["healthcheck"]);
  }
  std::map<std::string, std::string> env;
  for (const auto& kv : t["environment"]) {
    env[kv.first.as<std::string>()] = kv.second.as<std::string>();
  }
  tiertest::TempDir dir("compose");
  { std::ofstream(dir.path() + "/redis_password") << "secret"; }
  env["TIERD_REDIS_PASSWORD_FILE"] = dir.path() + "/redis_password";
  // The image's built-in config with the compose environment is valid.
  const tierd::Config config = tierd::parse_config(
      read_file(kSource + "/config/tierd.example.yaml"), "compose", env_of(env));
  CHECK_NOTHROW(tierd::resolve(config, env_of(env)));
  CHECK(config.http_host == "0.0.0.0");
  CHECK(compose_ms(t["stop_grace_period"].as<std::string>()) > config.shutdown_timeout.count());
  CHECK(t["secrets"][0].as<std::string>() == "redis_password");
}
