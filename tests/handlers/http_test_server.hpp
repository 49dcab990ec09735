#pragma once
// A real HTTP server for handler tests (webhooks, provider probes), on a thread of its own.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace tiertest {

/// A small HTTP/1.1 server on 127.0.0.1: answers each request with the next scripted
/// status (-1: never answers), records what it got.
class WebhookServer {
 public:
  struct Request {
    std::string head;
    std::string body;
  };

  explicit WebhookServer(std::vector<int> statuses) : statuses_(std::move(statuses)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(fd_, 16) == 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~WebhookServer() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  int port() const { return port_; }
  std::vector<Request> requests() {
    std::lock_guard lock(m_);
    return requests_;
  }

  bool readable(int fd) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 20) > 0;
  }
  /// Extra response header lines ("Name: value\r\n" each) sent with every answer.
  void headers(std::string lines) {
    std::lock_guard lock(m_);
    headers_ = std::move(lines);
  }
  /// Statuses for the requests still to come (replaces what was scripted).
  void script(std::vector<int> statuses) {
    std::lock_guard lock(m_);
    statuses_ = std::move(statuses);
    next_ = 0;
  }

 private:
  void serve() {
    while (!stop_) {
      if (!readable(fd_)) {
        continue;
      }
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) {
        continue;
      }
      std::string in;
      bool open = true;
      while (open && !stop_) {
        if (!readable(c)) {
          continue;
        }
        char buf[8192];
        const ssize_t n = ::recv(c, buf, sizeof buf, 0);
        if (n <= 0) {
          break;
        }
        in.append(buf, static_cast<std::size_t>(n));
        // Every complete request in the buffer gets its answer.
        for (;;) {
          const auto end = in.find("\r\n\r\n");
          if (end == std::string::npos) {
            break;
          }
          std::size_t length = 0;
          const auto cl = in.find("Content-Length: ");
          if (cl != std::string::npos && cl < end) {
            length = std::stoul(in.substr(cl + 16));
          }
          if (in.size() < end + 4 + length) {
            break;
          }
          Request r{in.substr(0, end), in.substr(end + 4, length)};
          in.erase(0, end + 4 + length);
          int status = 200;
          {
            std::lock_guard lock(m_);
            status = next_ < statuses_.size() ? statuses_[next_++] : 200;
            requests_.push_back(std::move(r));
          }
          if (status < 0) {
            continue;  // never answered: the client's deadline must end it
          }
          std::string extra;
          {
            std::lock_guard lock(m_);
            extra = headers_;
          }
          const std::string reply = "HTTP/1.1 " + std::to_string(status) + " X\r\n" + extra +
                                    "Content-Length: 2\r\nConnection: close\r\n\r\nok";
          (void)::send(c, reply.data(), reply.size(), MSG_NOSIGNAL);
          open = false;  // one request per connection, as the reply says
          break;
        }
      }
      ::close(c);
    }
  }

  std::vector<int> statuses_;
  std::string headers_;
  std::size_t next_ = 0;
  std::vector<Request> requests_;
  std::mutex m_;
  std::atomic<bool> stop_{false};
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
};

}  // namespace tiertest
