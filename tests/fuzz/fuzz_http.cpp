// The HTTP request path: any bytes a client can send, through the same HttpSession the
// daemon's server feeds from its sockets. Properties, beyond "no crash":
//   - splitting the input into reads changes nothing (same bytes out, same end state);
//   - every request is answered: the final answers written equal answered(), and only
//     100 Continue comes in between;
//   - a finished session's last answer says Connection: close, and it takes no more input.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "daemon/http_session.hpp"

namespace {

using tierd::HttpRequest;
using tierd::HttpResponse;

const tierd::HttpRoutes& routes() {
  static const tierd::HttpRoutes r = [] {
    tierd::HttpRoutes out;
    // Fixed bodies that never contain a status line, so answers can be counted.
    out.add("GET", "/healthz", [](const HttpRequest&) {
      HttpResponse resp;
      resp.body = "ok\n";
      return resp;
    });
    out.add("POST", "/echo", [](const HttpRequest& req) {
      HttpResponse resp;
      resp.body = std::to_string(req.body.size() + req.query.size() + req.headers.size());
      return resp;
    });
    out.add("GET", "/throw", [](const HttpRequest&) -> HttpResponse { throw 1; });
    return out;
  }();
  return r;
}

struct Run {
  std::string out;
  bool done = false;
  std::uint64_t answered = 0;
};

// Feeds `data` in pieces of `piece` bytes (0: at once) with a small output bound, draining
// held input as the server does after each write.
Run feed(std::string_view data, std::size_t piece, std::size_t max_output) {
  tierd::HttpSession session(routes(), 1024, nullptr);
  Run r;
  const std::size_t step = piece == 0 ? data.size() : piece;
  for (std::size_t pos = 0; pos < data.size(); pos += step) {
    std::string chunk;
    session.feed(data.substr(pos, step), chunk, max_output);
    r.out += chunk;
    while (session.blocked()) {
      chunk.clear();
      session.feed({}, chunk, max_output);
      if (chunk.empty() && session.blocked()) {
        __builtin_trap();  // held input that never moves: the server would stall
      }
      r.out += chunk;
    }
  }
  if (session.done()) {
    std::string after;
    session.feed("GET /healthz HTTP/1.1\r\n\r\n", after, max_output);
    if (!after.empty()) {
      __builtin_trap();  // a finished session answered again
    }
  }
  r.done = session.done();
  r.answered = session.answered();
  return r;
}

std::size_t count(const std::string& text, std::string_view what) {
  std::size_t n = 0;
  for (auto pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) {
    ++n;
  }
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  if (size == 0) {
    return 0;
  }
  // The first byte picks how the rest is split into reads and the output bound.
  const std::size_t piece = 1 + bytes[0] % 13;
  const std::size_t max_output = 64 + (bytes[0] >> 4) * 256;
  const std::string_view data(reinterpret_cast<const char*>(bytes) + 1, size - 1);

  const Run whole = feed(data, 0, max_output);
  const Run split = feed(data, piece, max_output);
  if (whole.out != split.out || whole.done != split.done || whole.answered != split.answered) {
    __builtin_trap();
  }
  const std::size_t finals = count(whole.out, "HTTP/1.1 ") - count(whole.out, "HTTP/1.1 100 ");
  if (finals != whole.answered) {
    __builtin_trap();
  }
  if (whole.done) {
    const auto last = whole.out.rfind("HTTP/1.1 ");
    if (last == std::string::npos ||
        whole.out.find("Connection: close\r\n", last) == std::string::npos) {
      __builtin_trap();
    }
  }
  return 0;
}
