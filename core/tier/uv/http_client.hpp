#pragma once
// HTTP requests on the loop: libcurl's multi interface driven by libuv (its sockets on
// tier::uv::Poll handles, its timeout on a tier::uv::Timer), so a slow or hanging server
// never blocks the loop. Name resolution is libcurl's threaded resolver. Every request has
// a deadline. All methods must be called on the loop's thread.

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tier/result.hpp"

typedef struct uv_loop_s uv_loop_t;

namespace tier::uv {

struct HttpRequest {
  std::string method = "POST";
  std::string url;                   ///< http:// or https:// only
  std::vector<std::string> headers;  ///< "Name: value"
  std::string body;
  std::chrono::milliseconds timeout{5000};  ///< the whole exchange, connect included
};

struct HttpResponse {
  long status = 0;
  /// Response headers, names lowercased, in order.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  ///< at most HttpClientOptions::max_response_bytes, the rest dropped
};

struct HttpClientOptions {
  std::size_t max_response_bytes = 64 * 1024;
  /// Sent as User-Agent.
  std::string user_agent = "tierd";
  /// Idle keep-alive connections kept open for reuse (libcurl's default shrinks with the
  /// transfers in flight, so periodic requests would reconnect every time).
  long max_idle_connections = 256;
  /// Finished transfer handles kept for reuse (each is a few tens of KB to set up).
  std::size_t max_idle_handles = 64;
};

class HttpClient {
 public:
  explicit HttpClient(uv_loop_t* loop, HttpClientOptions options = {});
  /// Abandons requests in flight without calling back (see close()).
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  /// Sends the request; `done` gets the response (any status) or an error: `invalid` for a
  /// bad URL or method, `timeout` past the deadline, `io` for connection and TLS failures.
  void request(HttpRequest request, std::function<void(Result<HttpResponse>)> done);
  /// Fails every request in flight with `closed`; later requests fail at once.
  void close();
  /// Requests in flight.
  std::size_t active() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace tier::uv
