// Uses the cache tiers and code_hash through the installed headers, and the blocking client
// against the Redis URL given (or only builds the ops when there is none).
#include <cstdio>

#include "tier/cache.hpp"
#include "tier/dedup.hpp"
#include "tier/sync/client.hpp"

int main(int argc, char** argv) {
  tier::Cache cache;
  const auto key = cache.session("s1", "k");
  const auto op = cache.set(key, nlohmann::json{{"a", 1}});
  std::printf("code_hash %s\n", tier::code_hash("x = 1\r\n").c_str());
  if (argc > 1) {
    tier::Client client(argv[1]);
    client.run(op);
    const auto back = client.run(cache.get(key));
    std::printf("get %s\n", back ? back->dump().c_str() : "nil");
    return back && (*back)["a"] == 1 ? 0 : 1;
  }
  return 0;
}
