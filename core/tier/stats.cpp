#include "tier/stats.hpp"

#include <charconv>
#include <sstream>

namespace tier {
namespace {

std::uint64_t to_u64(const std::string& s) {
  std::uint64_t v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

}  // namespace

ServerInfo parse_info(const std::string& text) {
  ServerInfo info;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') {
      line.pop_back();
    }
    if (line.empty() || line.front() == '#') {
      continue;
    }
    auto colon = line.find(':');
    if (colon == std::string::npos) {
      continue;
    }
    std::string k = line.substr(0, colon);
    std::string v = line.substr(colon + 1);
    info.raw[k] = v;
    if (k == "redis_version") {
      info.redis_version = v;
    } else if (k == "uptime_in_seconds") {
      info.uptime_s = to_u64(v);
    } else if (k == "used_memory") {
      info.used_memory = to_u64(v);
    } else if (k == "used_memory_peak") {
      info.used_memory_peak = to_u64(v);
    } else if (k == "maxmemory") {
      info.maxmemory = to_u64(v);
    } else if (k == "connected_clients") {
      info.connected_clients = to_u64(v);
    } else if (k == "blocked_clients") {
      info.blocked_clients = to_u64(v);
    } else if (k == "total_commands_processed") {
      info.total_commands_processed = to_u64(v);
    } else if (k == "instantaneous_ops_per_sec") {
      info.instantaneous_ops_per_sec = to_u64(v);
    } else if (k == "keyspace_hits") {
      info.keyspace_hits = to_u64(v);
    } else if (k == "keyspace_misses") {
      info.keyspace_misses = to_u64(v);
    } else if (k == "evicted_keys") {
      info.evicted_keys = to_u64(v);
    } else if (k == "expired_keys") {
      info.expired_keys = to_u64(v);
    } else if (k.starts_with("db") && v.starts_with("keys=")) {
      info.keys_per_db[k] = to_u64(v.substr(5, v.find(',') - 5));
    }
  }
  return info;
}

Op<ServerInfo> server_info() {
  return single<ServerInfo>(Command::of({"INFO"}), [](Reply&& r) -> Result<ServerInfo> {
    auto s = decode_string(std::move(r), "INFO");
    if (!s.ok()) {
      return s.error();
    }
    return parse_info(*s);
  });
}

}  // namespace tier
