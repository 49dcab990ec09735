#pragma once
// A small HTTP/1.1 server for /metrics, /healthz and /readyz on the daemon's own uv loop.
// The protocol is HttpSession's (http_session.hpp); this file moves its bytes to and from
// sockets. Handlers run on the loop and must not block. Every connection is bounded: a request must
// arrive whole within the idle timeout (so a client trickling bytes is dropped), its headers
// and body have size limits, and the number of open connections is capped.

#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "daemon/http_session.hpp"
#include "tier/listen.hpp"
#include "tier/result.hpp"

namespace tierd {

/// Where to listen (the one parser, shared with the config reader).
using ListenAddress = tier::ListenAddress;

struct HttpOptions {
  std::string host = "127.0.0.1";  ///< numeric address (or "localhost") to bind
  int port = 9464;                 ///< 0 = ephemeral; read the bound one with port()
  /// Largest request head (request line + headers) and largest body, each in bytes. A longer
  /// request line gets 414, bigger headers 431, a bigger body 413 (declared by
  /// Content-Length or by a chunk size: refused before it is read); the connection is then
  /// closed.
  std::size_t max_request_bytes = 16 * 1024;
  /// Time a connection may take to deliver one complete request, in ms: counted from accept
  /// or from the previous response, not reset by partial data. 0 = no limit.
  std::uint64_t idle_timeout_ms = 10'000;
  /// Open connections at most; extra ones get 503 and are closed. 0 = no limit.
  std::size_t max_connections = 64;
};

class HttpServer {
 public:
  HttpServer(uv_loop_t* loop, HttpOptions options);
  /// Closes whatever is still open; the memory of open handles is released once libuv has
  /// closed them, so destroying the server without close() is safe while the loop lives on.
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  /// Adds a route. GET routes also answer HEAD (without the body). Register before start().
  void route(const std::string& method, const std::string& path, HttpHandler handler);
  /// Binds and listens. Errors name the address (bad address, port in use, ...).
  tier::Status start();
  /// The bound port (useful with port 0), or 0 before start().
  int port() const;
  /// Stops listening and closes every connection; `done` runs once all handles are closed.
  void close(std::function<void()> done = {});
  HttpStats stats() const;

  struct Impl;

 private:
  Impl* impl_;  // owned; it deletes itself once its handles are closed (see ~HttpServer)
};

}  // namespace tierd
