#include <catch2/catch.hpp>

#include "tier/stats.hpp"

TEST_CASE("INFO parsing", "[stats][unit]") {
  std::string text =
      "# Server\r\nredis_version:7.0.15\r\nuptime_in_seconds:12\r\n\r\n# Memory\r\n"
      "used_memory:1048576\r\nmaxmemory:0\r\n# Stats\r\nkeyspace_hits:3\r\nkeyspace_misses:1\r\n"
      "evicted_keys:5\r\ntotal_commands_processed:99\r\n# Keyspace\r\n"
      "db0:keys=10,expires=2,avg_ttl=0\r\ngarbage line\r\n";
  auto info = tier::parse_info(text);
  CHECK(info.redis_version == "7.0.15");
  CHECK(info.uptime_s == 12);
  CHECK(info.used_memory == 1048576);
  CHECK(info.keyspace_hits == 3);
  CHECK(info.evicted_keys == 5);
  CHECK(info.total_commands_processed == 99);
  CHECK(info.keys_per_db.at("db0") == 10);
  CHECK(info.hit_ratio() == Approx(0.75));
}
