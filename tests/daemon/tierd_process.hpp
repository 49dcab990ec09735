#pragma once
// The real tierd binary under test: started from a config file written for the test, read
// through its HTTP endpoints and its log. TIERD_PATH is the built binary.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "support/servers.hpp"

namespace tiertest {

struct HttpReply {
  int status = 0;  ///< 0 = no answer
  std::string body;
};

/// A blocking TCP connection to 127.0.0.1:port with 2 s send/receive timeouts, or -1.
inline int connect_loopback(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) {
    return -1;
  }
  timeval tv{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

/// Blocking GET on the test side (the daemon under test is a separate process).
inline HttpReply http_get(int port, const std::string& path) {
  HttpReply out;
  const int fd = connect_loopback(port);
  if (fd < 0) {
    return out;
  }
  const std::string req = "GET " + path + " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    ::close(fd);
    return out;
  }
  std::string raw;
  char buf[65536];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) {
    raw.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  if (raw.rfind("HTTP/1.1 ", 0) != 0 || raw.size() < 12) {
    return out;
  }
  out.status = std::stoi(raw.substr(9, 3));
  const auto body = raw.find("\r\n\r\n");
  out.body = body == std::string::npos ? "" : raw.substr(body + 4);
  return out;
}

/// The value of one sample line in a /metrics text ("name{labels}"), or -1.
inline double sample(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(series + " ", 0) == 0) {
      return std::stod(line.substr(series.size() + 1));
    }
  }
  return -1;
}

/// tierd started from a config file written for the test.
class Tierd {
 public:
  /// `env` is set in the child only (NAME=value pairs); `handlers` (YAML list entries) come
  /// after the invalidate handler every instance has.
  Tierd(const std::string& redis_url, const std::string& prefix,
        const std::vector<std::pair<std::string, std::string>>& env = {},
        const std::string& handlers = "")
      : dir_("tierd"), port_(tiertest::free_port()), path_(dir_.path() + "/tierd.yaml") {
    yaml_ = "redis:\n  url: " + redis_url + "\n  command_timeout_ms: 1000\n" +
            "http:\n  listen: 127.0.0.1:" + std::to_string(port_) + "\nnamespace: \"" + prefix +
            "\"\nshutdown_timeout_ms: 2000\nlog_level: info\nhandlers:\n"
            "  - type: invalidate\n    on: [\"system:cache_invalidation\"]\n" +
            handlers;
    write(yaml_);
    // The child inherits the environment at spawn; set it only around the fork.
    for (const auto& [k, v] : env) {
      ::setenv(k.c_str(), v.c_str(), 1);
    }
    proc_.spawn({TIERD_PATH, "--config", path_}, dir_.path() + "/tierd.log");
    for (const auto& [k, v] : env) {
      ::unsetenv(k.c_str());
    }
  }
  void write(const std::string& text) { std::ofstream(path_, std::ios::trunc) << text; }
  HttpReply get(const std::string& path) const { return http_get(port_, path); }
  int port() const { return port_; }
  bool ready() const { return get("/readyz").status == 200; }
  std::string metrics() const { return get("/metrics").body; }
  std::string log() const {
    std::ifstream in(dir_.path() + "/tierd.log");
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
  tiertest::Process& proc() { return proc_; }
  const std::string& yaml() const { return yaml_; }

 private:
  tiertest::TempDir dir_;
  int port_;
  std::string path_;
  std::string yaml_;
  tiertest::Process proc_;
};

}  // namespace tiertest
