#include "daemon/probe.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "tier/keys.hpp"
#include "tier/numbers.hpp"

namespace tierd {

namespace {

using Clock = std::chrono::steady_clock;

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Waits for `events` on fd until the deadline; false on timeout.
bool wait_for(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      return false;
    }
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, static_cast<int>(left));
    if (n > 0) {
      return true;
    }
    if (n < 0 && errno != EINTR) {
      return false;
    }
  }
}

int fail(const ProbeTarget& t, const std::string& why) {
  std::fprintf(stderr, "tierd --probe: http://%s:%d%s: %s\n", t.host.c_str(), t.port,
               t.path.c_str(), why.c_str());
  return 1;
}

}  // namespace

ProbeTarget parse_probe_url(const std::string& url) {
  const std::string scheme = "http://";
  if (url.rfind(scheme, 0) != 0) {
    throw std::invalid_argument("the URL must start with http://");
  }
  std::string rest = url.substr(scheme.size());
  ProbeTarget t;
  const auto slash = rest.find('/');
  if (slash != std::string::npos) {
    t.path = rest.substr(slash);
    rest.resize(slash);
  }
  for (const char c : t.path) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7F) {
      throw std::invalid_argument("the path must not contain spaces or control characters");
    }
  }
  std::string port;
  if (!rest.empty() && rest.front() == '[') {
    const auto close = rest.find(']');
    if (close == std::string::npos || close + 1 >= rest.size() || rest[close + 1] != ':') {
      throw std::invalid_argument("expected [IPv6]:PORT");
    }
    t.host = rest.substr(1, close - 1);
    port = rest.substr(close + 2);
  } else {
    const auto colon = rest.rfind(':');
    if (colon == std::string::npos) {
      throw std::invalid_argument("expected IP:PORT (the port is required)");
    }
    t.host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  in6_addr a6{};
  in_addr a4{};
  if (::inet_pton(AF_INET, t.host.c_str(), &a4) != 1 &&
      ::inet_pton(AF_INET6, t.host.c_str(), &a6) != 1) {
    throw std::invalid_argument("the host must be an IP address, not a name");
  }
  const auto p = tier::parse_integer<int>(port);
  if (!p || *p < 1 || *p > 65535) {
    throw std::invalid_argument("the port must be 1-65535");
  }
  t.port = *p;
  return t;
}

ProbeTarget probe_target(const std::string& listen_host, int listen_port) {
  ProbeTarget t;
  t.host = listen_host == "0.0.0.0" ? "127.0.0.1" : listen_host == "::" ? "::1" : listen_host;
  t.port = listen_port;
  return t;
}

int run_probe(const ProbeTarget& t, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  sockaddr_storage addr{};
  socklen_t len = 0;
  int family = AF_INET;
  if (auto* a4 = reinterpret_cast<sockaddr_in*>(&addr);
      ::inet_pton(AF_INET, t.host.c_str(), &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons(static_cast<std::uint16_t>(t.port));
    len = sizeof(sockaddr_in);
  } else {
    auto* a6 = reinterpret_cast<sockaddr_in6*>(&addr);
    if (::inet_pton(AF_INET6, t.host.c_str(), &a6->sin6_addr) != 1) {
      return fail(t, "not an IP address");
    }
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(static_cast<std::uint16_t>(t.port));
    len = sizeof(sockaddr_in6);
    family = AF_INET6;
  }
  Fd fd(::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) {
    return fail(t, std::string("socket: ") + std::strerror(errno));
  }
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    if (errno != EINPROGRESS) {
      return fail(t, std::string("connect: ") + std::strerror(errno));
    }
    if (!wait_for(fd.get(), POLLOUT, deadline)) {
      return fail(t, "connect timed out");
    }
    int err = 0;
    socklen_t elen = sizeof err;
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &elen);
    if (err != 0) {
      return fail(t, std::string("connect: ") + std::strerror(err));
    }
  }
  const std::string request =
      "GET " + t.path + " HTTP/1.1\r\nHost: tierd\r\nConnection: close\r\n\r\n";
  std::size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = ::send(fd.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
    } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
      return fail(t, std::string("send: ") + std::strerror(errno));
    } else if (!wait_for(fd.get(), POLLOUT, deadline)) {
      return fail(t, "send timed out");
    }
  }
  // The status line is all we need: "HTTP/1.1 200 ...".
  std::string head;
  while (head.find("\r\n") == std::string::npos && head.size() < 256) {
    if (!wait_for(fd.get(), POLLIN, deadline)) {
      return fail(t, "no answer within the deadline");
    }
    char buf[256];
    const ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    if (n == 0) {
      break;
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) {
        continue;
      }
      return fail(t, std::string("recv: ") + std::strerror(errno));
    }
    head.append(buf, static_cast<std::size_t>(n));
  }
  if (head.size() < 12 || head.compare(0, 5, "HTTP/") != 0) {
    return fail(t, "not an HTTP answer");
  }
  const std::string status = head.substr(9, 3);
  if (status != "200") {
    const auto eol = head.find("\r\n");
    return fail(t, "answered '" + tier::excerpt(head.substr(0, eol), 80) + "'");
  }
  return 0;
}

}  // namespace tierd
