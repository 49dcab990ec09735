#pragma once
// The one explicit list of handler types, and resolve(): every handler section of a config
// through its type's factory. `tierd --check-config`, start and reload all run it, so a
// section that would not build is refused before anything connects.

#include <string>
#include <vector>

#include "config/config.hpp"
#include "handlers/handler.hpp"

namespace tierd {

struct ResolvedHandler {
  HandlerConfig config;  ///< the section's common settings
  Builder build;         ///< builds the handler once the daemon has a loop and links
};
using ResolvedHandlers = std::vector<ResolvedHandler>;

/// What the handlers of `config` may count on (a PostgreSQL connection, ...).
HostInfo host_info(const Config& config, const EnvLookup& env = process_env());
/// Runs the factory of every handler section, in order. Throws ConfigError naming the YAML
/// path: an unknown type (with the known ones), or what the factory refused.
ResolvedHandlers resolve(const Config& config, const EnvLookup& env = process_env());

/// The factory of a handler type; nullptr for an unknown type.
const Factory* find_factory(const std::string& type);
/// Every registered type name, for error messages.
std::vector<std::string> handler_types();

}  // namespace tierd
