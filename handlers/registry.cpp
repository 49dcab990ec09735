// The one explicit list of handler types. Adding a handler = one line here.
#include <utility>

#include "handlers/count/count.hpp"
#include "handlers/handler.hpp"
#include "handlers/invalidate/invalidate.hpp"
#include "handlers/write_behind/write_behind.hpp"

namespace tierd {

namespace {

const std::vector<std::pair<std::string, Factory>>& registry() {
  static const std::vector<std::pair<std::string, Factory>> list{
      {"count", count_factory()},
      {"invalidate", invalidate_factory()},
      {"write_behind", write_behind_factory()},
  };
  return list;
}

}  // namespace

const std::vector<std::string>& common_handler_keys() {
  static const std::vector<std::string> keys{
      "type",
      "name",
      "on",
      "max_concurrency",
      "queue_limit",
      "max_attempts",
      "retry_backoff_ms",
      "dedup_ttl_s",
  };
  return keys;
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
