#include "tier/uv/resolve.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <uv.h>

#include <memory>

namespace tier {

bool is_ip_literal(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

void resolve_host(uv_loop_t* loop, const std::string& host,
                  std::function<void(Result<std::string>)> done) {
  struct Req {
    uv_getaddrinfo_t req;
    std::string host;
    std::function<void(Result<std::string>)> done;
  };
  auto* r = new Req{{}, host, std::move(done)};
  r->req.data = r;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  int rc = uv_getaddrinfo(
      loop, &r->req,
      [](uv_getaddrinfo_t* req, int status, addrinfo* res) {
        std::unique_ptr<Req> r(static_cast<Req*>(req->data));
        if (status != 0 || res == nullptr) {
          uv_freeaddrinfo(res);
          r->done(Error{ErrorKind::io, "resolve " + r->host + ": " + uv_strerror(status)});
          return;
        }
        char ip[INET6_ADDRSTRLEN] = {0};
        if (res->ai_family == AF_INET6) {
          uv_ip6_name(reinterpret_cast<sockaddr_in6*>(res->ai_addr), ip, sizeof ip);
        } else {
          uv_ip4_name(reinterpret_cast<sockaddr_in*>(res->ai_addr), ip, sizeof ip);
        }
        uv_freeaddrinfo(res);
        r->done(std::string(ip));
      },
      r->host.c_str(), nullptr, &hints);
  if (rc != 0) {
    std::unique_ptr<Req> owned(r);
    owned->done(Error{ErrorKind::io, "resolve " + host + ": " + uv_strerror(rc)});
  }
}

}  // namespace tier
