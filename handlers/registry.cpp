// The one explicit list of handler types. Adding a handler = one line here.
#include "handlers/registry.hpp"

#include "config/yaml.hpp"
#include "handlers/count/count.hpp"
#include "handlers/invalidate/invalidate.hpp"
#include "handlers/notify/notify.hpp"
#include "handlers/provider_health/provider_health.hpp"
#include "handlers/quota_alerts/quota_alerts.hpp"
#include "handlers/warm/warm.hpp"
#include "handlers/write_behind/write_behind.hpp"
#include "tier/keys.hpp"

namespace tierd {

namespace {

const std::vector<std::pair<std::string, Factory>>& registry() {
  static const std::vector<std::pair<std::string, Factory>> list{
      {"count", count_factory()},
      {"invalidate", invalidate_factory()},
      {"notify", notify_factory()},
      {"provider_health", provider_health_factory()},
      {"quota_alerts", quota_alerts_factory()},
      {"warm", warm_factory()},
      {"write_behind", write_behind_factory()},
  };
  return list;
}

}  // namespace

HostInfo host_info(const Config& config, const EnvLookup& env) {
  HostInfo host;
  host.postgres = !config.postgres_conninfo.empty();
  host.env = env;
  return host;
}

ResolvedHandlers resolve(const Config& config, const EnvLookup& env) {
  const HostInfo host = host_info(config, env);
  ResolvedHandlers out;
  out.reserve(config.handlers.size());
  for (const auto& h : config.handlers) {
    const Factory* factory = find_factory(h.type);
    if (factory == nullptr) {
      std::string known;
      for (const auto& t : handler_types()) {
        known += (known.empty() ? "" : ", ") + t;
      }
      yaml::fail(h.section["type"], h.yaml_path + ".type",
                 "unknown handler type '" + tier::excerpt(h.type, 40) + "' (known: " + known + ")");
    }
    out.push_back(ResolvedHandler{h, (*factory)(h.section, h.yaml_path, host)});
  }
  return out;
}

const Factory* find_factory(const std::string& type) {
  for (const auto& [name, factory] : registry()) {
    if (name == type) {
      return &factory;
    }
  }
  return nullptr;
}

std::vector<std::string> handler_types() {
  std::vector<std::string> out;
  for (const auto& entry : registry()) {
    out.push_back(entry.first);
  }
  return out;
}

}  // namespace tierd
