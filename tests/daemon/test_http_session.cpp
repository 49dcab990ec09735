// HttpSession without sockets: the protocol as bytes in, bytes out. The property that
// matters most for a network peer: how the bytes are split into reads changes nothing.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "daemon/http_session.hpp"

using tierd::HttpRequest;
using tierd::HttpResponse;
using tierd::HttpRoutes;
using tierd::HttpSession;

namespace {

HttpRoutes test_routes() {
  HttpRoutes routes;
  routes.add("GET", "/healthz", [](const HttpRequest&) {
    HttpResponse r;
    r.body = "ok\n";
    return r;
  });
  routes.add("POST", "/echo", [](const HttpRequest& req) {
    HttpResponse r;
    r.body = req.path + "?" + req.query + ":" + req.body;
    return r;
  });
  return routes;
}

struct Outcome {
  std::string out;
  bool done = false;
  std::uint64_t answered = 0;
};

// Feeds `input` in pieces of `piece` bytes (0 = at once), draining held input as a socket
// server does once its output is sent.
Outcome run(const std::string& input, std::size_t piece, std::size_t max_output = 1 << 20) {
  HttpRoutes routes = test_routes();
  HttpSession session(routes, 16 * 1024, nullptr);
  Outcome o;
  const std::size_t step = piece == 0 ? input.size() : piece;
  for (std::size_t pos = 0; pos < input.size() && !session.done(); pos += step) {
    std::string chunk;
    session.feed(std::string_view(input).substr(pos, step), chunk, max_output);
    o.out += chunk;
    while (session.blocked() && !session.done()) {
      chunk.clear();
      session.feed({}, chunk, max_output);
      o.out += chunk;
    }
  }
  o.done = session.done();
  o.answered = session.answered();
  return o;
}

}  // namespace

TEST_CASE("HttpSession: the same answers however the input is split", "[http]") {
  const std::vector<std::string> inputs = {
      "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\nGET /nope HTTP/1.1\r\n\r\n",
      "POST /echo?a=1 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /healthz HTTP/1.0\r\n\r\n",
      "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n",
      "POST /echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
      "GET http://h/healthz HTTP/1.1\r\n\r\nGET /healthz HTTP/1.1\r\nUpgrade: x\r\n"
      "Connection: upgrade\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n",
      "GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n",
      "GARBAGE\r\n\r\n",
      "GET /healthz HTTP/7.1\r\n\r\n",
  };
  for (const auto& input : inputs) {
    INFO(input);
    const Outcome whole = run(input, 0);
    CHECK(whole.answered > 0);
    for (std::size_t piece : {1, 2, 3, 7, 16}) {
      const Outcome split = run(input, piece);
      INFO("pieces of " << piece);
      CHECK(split.out == whole.out);
      CHECK(split.done == whole.done);
      CHECK(split.answered == whole.answered);
    }
  }
}

TEST_CASE("HttpSession: answers stop at the output bound and resume from held input", "[http]") {
  HttpRoutes routes = test_routes();
  HttpSession session(routes, 16 * 1024, nullptr);
  std::string input;
  for (int i = 0; i < 100; ++i) {
    input += "GET /healthz HTTP/1.1\r\n\r\n";
  }
  std::string out;
  session.feed(input, out, 1000);
  CHECK(session.blocked());
  CHECK(session.answered() < 100);
  CHECK(out.size() > 1000);
  CHECK(out.size() < 1300);  // one answer past the bound, not all of them
  while (session.blocked()) {
    std::string more;
    session.feed({}, more, 1000);
    out += more;
  }
  CHECK(session.answered() == 100);
  CHECK_FALSE(session.done());
}

TEST_CASE("HttpSession: refusals close the session with one answer", "[http]") {
  struct Case {
    std::string input;
    int status;
  };
  const std::vector<Case> cases = {
      {"GET /healthz HTTP/9.9\r\n\r\n", 505},
      {"GET /" + std::string(20000, 'a') + " HTTP/1.1\r\n\r\n", 414},
      {"GET /healthz HTTP/1.1\r\nX: " + std::string(20000, 'a') + "\r\n\r\n", 431},
      {"POST /echo HTTP/1.1\r\nContent-Length: 1000000\r\n\r\n", 413},
      {"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFF\r\n", 413},
      {"POST /echo HTTP/1.1\r\nExpect: nope\r\nContent-Length: 1\r\n\r\nx", 417},
      {"GET nohost HTTP/1.1\r\n\r\n", 400},
      {"\x01\x02\x03", 400},
  };
  for (const auto& c : cases) {
    INFO(c.input.substr(0, 60));
    INFO(run(c.input, 0).out.substr(0, 80));
    const Outcome o = run(c.input + "GET /healthz HTTP/1.1\r\n\r\n", 0);
    CHECK(o.done);
    CHECK(o.answered == 1);
    CHECK(o.out.rfind("HTTP/1.1 " + std::to_string(c.status) + " ", 0) == 0);
    CHECK(o.out.find("Connection: close\r\n") != std::string::npos);
  }
}
