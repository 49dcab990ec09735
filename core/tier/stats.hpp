#pragma once
// Server statistics from INFO, as typed fields.

#include <cstdint>
#include <map>
#include <string>

#include "tier/op.hpp"

namespace tier {

struct ServerInfo {
  std::string redis_version;
  std::uint64_t uptime_s = 0;
  std::uint64_t used_memory = 0;       ///< bytes
  std::uint64_t used_memory_peak = 0;  ///< bytes
  std::uint64_t maxmemory = 0;         ///< bytes; 0 = no limit
  std::uint64_t connected_clients = 0;
  std::uint64_t blocked_clients = 0;
  std::uint64_t total_commands_processed = 0;
  std::uint64_t instantaneous_ops_per_sec = 0;
  std::uint64_t keyspace_hits = 0;
  std::uint64_t keyspace_misses = 0;
  std::uint64_t evicted_keys = 0;
  std::uint64_t expired_keys = 0;
  std::map<std::string, std::uint64_t> keys_per_db;  ///< "db0" -> keys
  std::map<std::string, std::string> raw;            ///< every field INFO returned

  double hit_ratio() const {
    auto n = keyspace_hits + keyspace_misses;
    return n == 0 ? 0.0 : static_cast<double>(keyspace_hits) / static_cast<double>(n);
  }
};

/// Parses INFO text; unknown fields go to `raw` only.
ServerInfo parse_info(const std::string& text);
/// INFO (all default sections).
Op<ServerInfo> server_info();

}  // namespace tier
