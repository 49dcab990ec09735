#include "context.hpp"

#include <CLI/CLI.hpp>
#include <iostream>

#include "tier/errors.hpp"
#include "tier/keys.hpp"

namespace tierctl {

tier::Client& Context::client() {
  if (!client_) {
    tier::ClientOptions o;
    o.endpoint = tier::RedisEndpoint::parse(options.redis_url);
    // One command at a time: a second connection would never be used.
    o.pool_size = 1;
    o.client_name = "tierctl";
    client_ = std::make_unique<tier::Client>(std::move(o));
  }
  return *client_;
}

const tier::Cache& Context::cache() {
  if (!cache_) {
    tier::CacheOptions o;
    o.prefix = options.prefix;
    cache_ = std::make_unique<tier::Cache>(std::move(o));
  }
  return *cache_;
}

void Context::on_run(CLI::App* command, std::function<int()> run) {
  commands_.emplace_back(command, std::move(run));
}

int Context::run_selected() {
  for (auto& [command, run] : commands_) {
    if (command->parsed()) {
      return run();
    }
  }
  // require_subcommand(1) makes this unreachable; keep the contract anyway.
  throw CLI::RequiredError("a command");
}

void Context::print_json(const Json& j) {
  // Invalid UTF-8 from Redis is replaced rather than aborting the output.
  std::cout << j.dump(-1, ' ', false, Json::error_handler_t::replace) << '\n';
}

Json parse_json_arg(const std::string& text, const std::string& what) {
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    throw tier::InvalidArgument(what + " is not valid JSON: '" + tier::excerpt(text, 40) + "'");
  }
  return j;
}

}  // namespace tierctl
