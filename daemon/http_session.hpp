#pragma once
// HTTP/1.1 on one connection, without I/O: bytes in, responses out. The uv server in
// http.hpp moves bytes between a socket and an HttpSession; tests and the fuzzer drive the
// session directly, so every byte sequence a client can send is handled by this one piece.
//
// What it answers beyond the routes (RFC 9110/9112):
//   - pipelined requests in order, each answered before the next is parsed;
//   - absolute-form targets (GET http://host/healthz) route on their path;
//   - Upgrade: is ignored (the request is answered as if it had none) and CONNECT gets 405;
//     requests pipelined after either are parsed as usual;
//   - Expect: 100-continue gets an interim 100 before a body; any other expectation 417;
//   - a request line, header block or body (Content-Length, or any one chunk) over the
//     limit is refused at once with 414, 431 or 413; a version other than HTTP/1.x gets 505;
//     malformed input gets 400. Each of these closes the connection after its answer.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tierd {

struct HttpRequest {
  std::string method;  ///< "GET", "HEAD", ...
  std::string path;    ///< the target's path, without the query string
  std::string query;   ///< after '?', without it; empty when absent
  std::vector<std::pair<std::string, std::string>> headers;  ///< as received
  std::string body;

  /// The first header with this name (case-insensitive), or empty.
  std::string header(const std::string& name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  ///< extra headers
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

/// Counters for /metrics and tests.
struct HttpStats {
  std::uint64_t requests = 0;               ///< requests answered by a route (or 404/405)
  std::uint64_t bad_requests = 0;           ///< refused: 400, 413, 414, 417, 431, 505
  std::uint64_t rejected_connections = 0;   ///< over max_connections
  std::uint64_t timed_out_connections = 0;  ///< closed by the idle timeout
  std::uint64_t paused_reads = 0;  ///< times a client's input waited for it to take its answers
  std::uint64_t bytes_read = 0;    ///< request bytes received, every connection
  std::size_t open_connections = 0;
};

/// Method and path to handler. GET routes also answer HEAD (without the body); an unknown
/// path is 404, a known path with another method 405 with Allow. A handler that throws
/// gets 500: a bug in one route must not take the daemon down.
class HttpRoutes {
 public:
  void add(const std::string& method, const std::string& path, HttpHandler handler);
  HttpResponse answer(const HttpRequest& request) const;

 private:
  std::map<std::string, std::map<std::string, HttpHandler>> routes_;  // path -> method -> handler
};

class HttpSession {
 public:
  /// `routes` and `stats` must outlive the session; `stats` may be null.
  HttpSession(const HttpRoutes& routes, std::size_t max_request_bytes, HttpStats* stats);
  ~HttpSession();
  HttpSession(const HttpSession&) = delete;
  HttpSession& operator=(const HttpSession&) = delete;

  /// Parses `data` and appends the answers to `out`. Once `out` holds more than
  /// `max_output` bytes, parsing stops and the rest of the input is held back (blocked()):
  /// call feed() again, with more data or none, once the output has been sent.
  void feed(std::string_view data, std::string& out, std::size_t max_output);

  /// Input is held back because the output is full.
  bool blocked() const;
  /// The last answer is in the output (Connection: close, or a refused request): send
  /// it, then close. Nothing more is parsed.
  bool done() const;
  /// Requests answered so far, refusals included.
  std::uint64_t answered() const;
  /// True between the first byte of a request and its answer.
  bool in_request() const;

  struct State;

 private:
  std::unique_ptr<State> state_;
};

/// The reason phrase of a status code ("Not Found").
const char* http_reason(int status);

/// Appends a whole HTTP/1.1 response to `out`; without the body for HEAD.
void write_response(std::string& out, const HttpResponse& response, bool keep_alive, bool head);

}  // namespace tierd
