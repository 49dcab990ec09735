#pragma once
// HTTP headers of a handler's config (webhooks, provider probes): a mapping of names to
// values whose ${VAR} parts are read from the environment, so that secrets (API keys,
// tokens) never stand in the YAML.

#include <string>
#include <vector>

#include "config/config.hpp"

namespace YAML {
class Node;
}

namespace tierd {

/// "Name: value" lines from `headers` (absent = none) at `path`. Throws ConfigError naming the
/// header's path: a name that is not a token, a ${VAR} that is not set, CR/LF/NUL in a value.
std::vector<std::string> http_headers(const YAML::Node& headers, const std::string& path,
                                      const EnvLookup& env);

}  // namespace tierd
