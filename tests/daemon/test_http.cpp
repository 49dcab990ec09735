// The daemon's HTTP server against real sockets on 127.0.0.1, port 0. The client side uses
// non-blocking sockets so one thread drives both ends: the test sends, then runs the loop until
// the answer it expects has arrived (or the deadline passes).

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "daemon/http.hpp"
#include "support/helpers.hpp"
#include "tier/errors.hpp"

using namespace std::chrono_literals;
using tierd::HttpOptions;
using tierd::HttpRequest;
using tierd::HttpResponse;
using tierd::HttpServer;
using tierd::ListenAddress;
using tiertest::TestLoop;

namespace {

struct Parsed {
  int status = 0;
  std::string head;
  std::string body;
};

// Splits a byte stream into complete responses (each with Content-Length).
std::vector<Parsed> parse_responses(const std::string& data) {
  std::vector<Parsed> out;
  std::size_t pos = 0;
  while (true) {
    auto end = data.find("\r\n\r\n", pos);
    if (end == std::string::npos) {
      break;
    }
    Parsed p;
    p.head = data.substr(pos, end - pos);
    p.status = std::stoi(p.head.substr(9, 3));
    auto cl = p.head.find("Content-Length: ");
    std::size_t len = cl == std::string::npos ? 0 : std::stoul(p.head.substr(cl + 16));
    bool head_only = false;
    if (data.size() < end + 4 + len) {
      head_only = true;
    }
    if (head_only) {
      break;
    }
    p.body = data.substr(end + 4, len);
    out.push_back(p);
    pos = end + 4 + len;
  }
  return out;
}

class RawClient {
 public:
  explicit RawClient(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    // The kernel completes the handshake from the listen backlog, so a blocking connect
    // returns before the server's loop has run.
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      throw std::runtime_error(std::string("connect: ") + strerror(errno));
    }
    ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
  }
  ~RawClient() { ::close(fd_); }

  /// Sends everything, running the loop whenever the socket buffer is full.
  void send(TestLoop& loop, const std::string& data) {
    std::size_t off = 0;
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (off < data.size()) {
      ssize_t n = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        off += static_cast<std::size_t>(n);
        continue;
      }
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        throw std::runtime_error(std::string("send: ") + strerror(errno));
      }
      REQUIRE(std::chrono::steady_clock::now() < deadline);
      loop.run_until([] { return false; }, 5ms);
    }
  }
  /// Reads whatever is available; notes EOF or reset.
  void pump() {
    char buf[16384];
    while (!eof_) {
      ssize_t n = ::recv(fd_, buf, sizeof(buf), MSG_DONTWAIT);
      if (n > 0) {
        data_.append(buf, static_cast<std::size_t>(n));
      } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
        eof_ = true;
      } else {
        break;
      }
    }
  }
  bool wait_responses(TestLoop& loop, std::size_t count, std::chrono::milliseconds t = 5s) {
    return loop.run_until(
        [&] {
          pump();
          return parse_responses(data_).size() >= count;
        },
        t);
  }
  bool wait_eof(TestLoop& loop, std::chrono::milliseconds t = 5s) {
    return loop.run_until(
        [&] {
          pump();
          return eof_;
        },
        t);
  }
  std::vector<Parsed> responses() const { return parse_responses(data_); }
  bool eof() const { return eof_; }
  const std::string& raw() const { return data_; }
  /// Closes with SO_LINGER 0: the peer gets a RST, not a FIN.
  void reset() {
    linger l{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    ::close(fd_);
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);  // the destructor closes something harmless
  }

 private:
  int fd_ = -1;
  std::string data_;
  bool eof_ = false;
};

std::string get(const std::string& target, const std::string& extra = "") {
  return "GET " + target + " HTTP/1.1\r\nHost: t\r\n" + extra + "\r\n";
}

HttpOptions test_options() {
  HttpOptions o;
  o.host = "127.0.0.1";
  o.port = 0;
  return o;
}

// A server with the routes the tests use.
std::unique_ptr<HttpServer> make_server(TestLoop& loop, HttpOptions o = test_options()) {
  auto server = std::make_unique<HttpServer>(loop.get(), o);
  server->route("GET", "/healthz", [](const HttpRequest&) {
    HttpResponse r;
    r.body = "ok\n";
    return r;
  });
  server->route("GET", "/echo", [](const HttpRequest& req) {
    HttpResponse r;
    r.body = req.query + "|" + req.header("x-tag");
    return r;
  });
  server->route("POST", "/echo", [](const HttpRequest& req) {
    HttpResponse r;
    r.body = "body=" + req.body;
    return r;
  });
  server->route("GET", "/big", [](const HttpRequest&) {
    HttpResponse r;
    r.body = std::string(4096, 'x');
    return r;
  });
  server->route("GET", "/throw", [](const HttpRequest&) -> HttpResponse {
    throw std::runtime_error("handler bug");
  });
  auto st = server->start();
  REQUIRE(st.ok());
  REQUIRE(server->port() > 0);
  return server;
}

void close_server(TestLoop& loop, HttpServer& server) {
  bool closed = false;
  server.close([&] { closed = true; });
  REQUIRE(loop.run_until([&] { return closed; }));
}

}  // namespace

TEST_CASE("http: routes, HEAD, 404, 405 and keep-alive", "[http]") {
  TestLoop loop;
  auto server = make_server(loop);
  RawClient c(server->port());

  c.send(loop, get("/healthz"));
  REQUIRE(c.wait_responses(loop, 1));
  auto r = c.responses();
  CHECK(r[0].status == 200);
  CHECK(r[0].body == "ok\n");
  CHECK(r[0].head.find("Connection: keep-alive") != std::string::npos);
  CHECK(r[0].head.find("Content-Type: text/plain; charset=utf-8") != std::string::npos);

  // Same connection: query string and headers reach the handler.
  c.send(loop, get("/echo?a=1&b=2", "X-Tag: hello\r\n"));
  REQUIRE(c.wait_responses(loop, 2));
  CHECK(c.responses()[1].body == "a=1&b=2|hello");

  c.send(loop, get("/nope"));
  REQUIRE(c.wait_responses(loop, 3));
  CHECK(c.responses()[2].status == 404);

  c.send(loop, "POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi");
  REQUIRE(c.wait_responses(loop, 4));
  CHECK(c.responses()[3].status == 405);
  CHECK(c.responses()[3].head.find("Allow: GET, HEAD") != std::string::npos);

  CHECK(server->stats().requests == 4);
  CHECK(server->stats().open_connections == 1);
  close_server(loop, *server);
  CHECK(c.wait_eof(loop));
}

TEST_CASE("http: HEAD has no body", "[http]") {
  TestLoop loop;
  auto server = make_server(loop);
  RawClient c(server->port());
  c.send(loop, "HEAD /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  REQUIRE(c.wait_eof(loop));
  // The head of the GET answer (its Content-Length included) and nothing after it.
  CHECK(c.raw().rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(c.raw().find("Content-Length: 3\r\n") != std::string::npos);
  CHECK(c.raw().size() == c.raw().find("\r\n\r\n") + 4);
  close_server(loop, *server);
}

TEST_CASE("http: malformed request gets 400, the server keeps serving", "[http]") {
  TestLoop loop;
  auto server = make_server(loop);
  {
    RawClient bad(server->port());
    bad.send(loop, "THIS IS NOT HTTP\r\n\r\n");
    REQUIRE(bad.wait_eof(loop));
    auto r = bad.responses();
    REQUIRE(r.size() == 1);
    CHECK(r[0].status == 400);
    CHECK(r[0].head.find("Connection: close") != std::string::npos);
  }
  {
    RawClient bad(server->port());
    bad.send(loop, "GET /healthz HTTP/1.1\r\nBad Header Line\r\n\r\n");
    REQUIRE(bad.wait_eof(loop));
    REQUIRE(bad.responses().size() == 1);
    CHECK(bad.responses()[0].status == 400);
  }
  {
    // Binary garbage.
    RawClient bad(server->port());
    bad.send(loop, std::string("\x00\x01\x02\xff\xfe GET\r\n\r\n", 12));
    REQUIRE(bad.wait_eof(loop));
    REQUIRE(bad.responses().size() == 1);
    CHECK(bad.responses()[0].status == 400);
  }
  CHECK(server->stats().bad_requests == 3);
  RawClient good(server->port());
  good.send(loop, get("/healthz"));
  REQUIRE(good.wait_responses(loop, 1));
  CHECK(good.responses()[0].status == 200);
  CHECK(loop.run_until([&] { return server->stats().open_connections == 1; }));
  close_server(loop, *server);
}

TEST_CASE("http: size limits answer 431, 414 and 413", "[http]") {
  TestLoop loop;
  HttpOptions o = test_options();
  o.max_request_bytes = 2048;
  auto server = make_server(loop, o);

  SECTION("oversized headers") {
    RawClient c(server->port());
    c.send(loop,
           "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(4000, 'a') + "\r\n\r\n");
    REQUIRE(c.wait_eof(loop));
    REQUIRE(c.responses().size() == 1);
    CHECK(c.responses()[0].status == 431);
  }
  SECTION("many small headers") {
    std::string headers;
    for (int i = 0; i < 300; ++i) {
      headers += "X-H" + std::to_string(i) + ": v\r\n";
    }
    RawClient c(server->port());
    c.send(loop, get("/healthz", headers));
    REQUIRE(c.wait_eof(loop));
    REQUIRE(c.responses().size() == 1);
    CHECK(c.responses()[0].status == 431);
  }
  SECTION("oversized URL") {
    RawClient c(server->port());
    c.send(loop, get("/echo?" + std::string(3000, 'q')));
    REQUIRE(c.wait_eof(loop));
    REQUIRE(c.responses().size() == 1);
    CHECK(c.responses()[0].status == 414);
  }
  SECTION("declared body too large is refused before it is sent") {
    RawClient c(server->port());
    c.send(loop, "GET /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n");
    REQUIRE(c.wait_eof(loop));
    REQUIRE(c.responses().size() == 1);
    CHECK(c.responses()[0].status == 413);
  }
  SECTION("chunked body too large") {
    RawClient c(server->port());
    std::string chunk(1500, 'b');
    char size_hex[16];
    snprintf(size_hex, sizeof(size_hex), "%zx", chunk.size());
    std::string req = "GET /healthz HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
    req += std::string(size_hex) + "\r\n" + chunk + "\r\n";
    req += std::string(size_hex) + "\r\n" + chunk + "\r\n0\r\n\r\n";
    c.send(loop, req);
    REQUIRE(c.wait_eof(loop));
    REQUIRE(c.responses().size() == 1);
    CHECK(c.responses()[0].status == 413);
  }
  CHECK(server->stats().bad_requests == 1);
  // A request within the limits still works.
  RawClient ok(server->port());
  ok.send(loop, get("/healthz", "X-Fine: " + std::string(1000, 'a') + "\r\n"));
  REQUIRE(ok.wait_responses(loop, 1));
  CHECK(ok.responses()[0].status == 200);
  close_server(loop, *server);
}

TEST_CASE("http: pipelined requests are answered in order", "[http]") {
  TestLoop loop;
  auto server = make_server(loop);
  RawClient c(server->port());
  std::string batch;
  for (int i = 0; i < 200; ++i) {
    batch += get("/echo?i=" + std::to_string(i), i % 7 == 0 ? "X-Tag: seven\r\n" : "");
  }
  batch += get("/missing");
  c.send(loop, batch);
  REQUIRE(c.wait_responses(loop, 201));
  auto r = c.responses();
  for (int i = 0; i < 200; ++i) {
    REQUIRE(r[i].status == 200);
    REQUIRE(r[i].body == "i=" + std::to_string(i) + "|" + (i % 7 == 0 ? "seven" : ""));
  }
  CHECK(r[200].status == 404);
  CHECK_FALSE(c.eof());
  close_server(loop, *server);
}

TEST_CASE("http: a pipelining client that does not read is paused, not buffered", "[http]") {
  TestLoop loop;
  auto server = make_server(loop);
  RawClient c(server->port());
  // 2000 x 4 KiB answers = 8 MiB, far more than the socket buffers hold while we do not read.
  std::string batch;
  for (int i = 0; i < 2000; ++i) {
    batch += get("/big");
  }
  c.send(loop, batch);
  // The server stops parsing once its unsent answers pass the bound, long before 2000.
  REQUIRE(loop.run_until([&] { return server->stats().paused_reads >= 1; }));
  CHECK(server->stats().requests < 2000);
  // Now read everything: the held requests are answered as the client takes the answers.
  REQUIRE(c.wait_responses(loop, 2000, 20s));
  auto r = c.responses();
  CHECK(r.size() == 2000);
  CHECK(r.back().body.size() == 4096);
  CHECK(server->stats().requests == 2000);
  close_server(loop, *server);
}

TEST_CASE("http: Connection: close and HTTP/1.0 close after the answer", "[http]") {
  TestLoop loop;
  auto server = make_server(loop);
  {
    RawClient c(server->port());
    // The second request after Connection: close is never answered.
    c.send(loop, get("/healthz", "Connection: close\r\n") + get("/healthz"));
    REQUIRE(c.wait_eof(loop));
    REQUIRE(c.responses().size() == 1);
    CHECK(c.responses()[0].head.find("Connection: close") != std::string::npos);
  }
  {
    RawClient c(server->port());
    c.send(loop, "GET /healthz HTTP/1.0\r\n\r\n");
    REQUIRE(c.wait_eof(loop));
    REQUIRE(c.responses().size() == 1);
    CHECK(c.responses()[0].status == 200);
  }
  close_server(loop, *server);
}

TEST_CASE("http: a throwing handler answers 500", "[http]") {
  TestLoop loop;
  auto server = make_server(loop);
  RawClient c(server->port());
  c.send(loop, get("/throw") + get("/healthz"));
  REQUIRE(c.wait_responses(loop, 2));
  CHECK(c.responses()[0].status == 500);
  CHECK(c.responses()[1].status == 200);
  close_server(loop, *server);
}

TEST_CASE("http: many connections, and the connection cap", "[http]") {
  TestLoop loop;
  SECTION("60 concurrent connections are all served") {
    auto server = make_server(loop);
    std::vector<std::unique_ptr<RawClient>> clients;
    for (int i = 0; i < 60; ++i) {
      clients.push_back(std::make_unique<RawClient>(server->port()));
      clients.back()->send(loop, get("/echo?c=" + std::to_string(i)));
    }
    for (int i = 0; i < 60; ++i) {
      REQUIRE(clients[i]->wait_responses(loop, 1));
      CHECK(clients[i]->responses()[0].body == "c=" + std::to_string(i) + "|");
    }
    CHECK(server->stats().open_connections == 60);
    CHECK(server->stats().rejected_connections == 0);
    close_server(loop, *server);
    for (auto& c : clients) {
      CHECK(c->wait_eof(loop));
    }
  }
  SECTION("over max_connections gets 503; a freed slot is reused") {
    HttpOptions o = test_options();
    o.max_connections = 4;
    auto server = make_server(loop, o);
    std::vector<std::unique_ptr<RawClient>> clients;
    for (int i = 0; i < 4; ++i) {
      clients.push_back(std::make_unique<RawClient>(server->port()));
    }
    REQUIRE(loop.run_until([&] { return server->stats().open_connections == 4; }));
    RawClient extra(server->port());
    REQUIRE(extra.wait_eof(loop));
    REQUIRE(extra.responses().size() == 1);
    CHECK(extra.responses()[0].status == 503);
    CHECK(server->stats().rejected_connections == 1);

    clients.pop_back();
    REQUIRE(loop.run_until([&] { return server->stats().open_connections == 3; }));
    RawClient again(server->port());
    again.send(loop, get("/healthz"));
    REQUIRE(again.wait_responses(loop, 1));
    CHECK(again.responses()[0].status == 200);
    close_server(loop, *server);
  }
}

TEST_CASE("http: idle and slowloris connections are closed by the timeout", "[http]") {
  TestLoop loop;
  HttpOptions o = test_options();
  o.idle_timeout_ms = 300;
  auto server = make_server(loop, o);

  SECTION("a connection that sends nothing") {
    RawClient c(server->port());
    auto t0 = std::chrono::steady_clock::now();
    REQUIRE(c.wait_eof(loop, 3s));
    CHECK(std::chrono::steady_clock::now() - t0 >= 250ms);
    CHECK(c.responses().empty());
  }
  SECTION("a request trickled one byte at a time is not given more time") {
    RawClient c(server->port());
    std::string req = get("/healthz", "X-Slow: " + std::string(200, 's') + "\r\n");
    auto t0 = std::chrono::steady_clock::now();
    std::size_t sent = 0;
    while (!c.eof() && sent < req.size() && std::chrono::steady_clock::now() - t0 < 5s) {
      c.send(loop, req.substr(sent++, 1));
      loop.run_until([&] { return false; }, 20ms);
      c.pump();
    }
    REQUIRE(c.eof());
    // Closed near the timeout, long before the whole request (~6 s at this pace) was sent.
    CHECK(std::chrono::steady_clock::now() - t0 < 2s);
    CHECK(sent < req.size());
    CHECK(c.responses().empty());
  }
  SECTION("the timeout restarts after each answered request") {
    RawClient c(server->port());
    for (int i = 0; i < 4; ++i) {
      c.send(loop, get("/healthz"));
      REQUIRE(c.wait_responses(loop, static_cast<std::size_t>(i + 1)));
      loop.run_until([] { return false; }, 150ms);
    }
    // 4 x 150 ms > 300 ms in total, yet the connection lived: each request re-armed it.
    CHECK_FALSE(c.eof());
    REQUIRE(c.wait_eof(loop, 3s));
  }
  CHECK(server->stats().timed_out_connections == 1);
  CHECK(loop.run_until([&] { return server->stats().open_connections == 0; }));
  close_server(loop, *server);
}

TEST_CASE("http: start errors and close", "[http]") {
  TestLoop loop;
  auto first = make_server(loop);
  HttpOptions o = test_options();
  o.port = first->port();
  HttpServer second(loop.get(), o);
  auto st = second.start();
  REQUIRE_FALSE(st.ok());
  CHECK_THAT(st.error().message, Catch::Contains("127.0.0.1:" + std::to_string(first->port())));
  CHECK_THAT(st.error().message, Catch::Contains("in use"));

  HttpOptions bad = test_options();
  bad.host = "example.com";
  HttpServer third(loop.get(), bad);
  auto st3 = third.start();
  REQUIRE_FALSE(st3.ok());
  CHECK_THAT(st3.error().message, Catch::Contains("numeric IP"));

  // close() with a connection open: the client sees EOF, the callback runs once.
  RawClient c(first->port());
  REQUIRE(loop.run_until([&] { return first->stats().open_connections == 1; }));
  int calls = 0;
  first->close([&] { ++calls; });
  REQUIRE(loop.run_until([&] { return calls == 1; }));
  CHECK(c.wait_eof(loop));
  first->close([&] { ++calls; });
  CHECK(calls == 2);
}

TEST_CASE("http: destroying a server with open connections is safe", "[http]") {
  TestLoop loop;
  auto server = make_server(loop);
  RawClient c(server->port());
  c.send(loop, get("/healthz"));
  REQUIRE(c.wait_responses(loop, 1));
  server.reset();
  CHECK(c.wait_eof(loop));
}

TEST_CASE("http: IPv6 loopback", "[http]") {
  TestLoop loop;
  HttpOptions o;
  o.host = "::1";
  o.port = 0;
  HttpServer server(loop.get(), o);
  auto st = server.start();
  if (!st.ok()) {
    WARN("no IPv6 loopback here: " << st.error().message);
    return;
  }
  CHECK(server.port() > 0);
  close_server(loop, server);
}

TEST_CASE("listen address parsing", "[http]") {
  auto a = ListenAddress::parse("127.0.0.1:9464");
  CHECK(a.host == "127.0.0.1");
  CHECK(a.port == 9464);
  auto b = ListenAddress::parse("[::1]:9464");
  CHECK(b.host == "::1");
  CHECK(b.port == 9464);
  CHECK(b.to_string() == "[::1]:9464");
  CHECK(ListenAddress::parse("0.0.0.0:0").port == 0);
  CHECK(ListenAddress::parse("localhost:80").host == "localhost");
  CHECK(ListenAddress::parse("[::]:65535").port == 65535);

  auto bad = [](const std::string& text, const std::string& why) {
    try {
      ListenAddress::parse(text);
      FAIL("accepted " << text);
    } catch (const tier::InvalidArgument& e) {
      std::string what = e.what();
      CHECK_THAT(what, Catch::Contains(why));
      CHECK_THAT(what, Catch::Contains("'" + text + "'"));
    }
  };
  bad("", "missing ':port'");
  bad("127.0.0.1", "missing ':port'");
  bad(":9464", "empty host");
  bad("127.0.0.1:", "port must be");
  bad("127.0.0.1:65536", "port must be");
  bad("127.0.0.1:-1", "port must be");
  bad("127.0.0.1:94a4", "port must be");
  bad("::1:9464", "must be written in brackets");
  bad("[::1:9464", "missing ']'");
  bad("[::1]9464", "expected ':port' right after ']'");
  bad("[127.0.0.1]:80", "not an IPv6 address");
  bad("example.com:80", "host must be an IP address");
  bad("999.1.1.1:80", "host must be an IP address");
  bad("[fe80::1%eth0]:80", "zone ids");
  bad("[::1]x:80", "expected ':port' right after ']'");
  // Control bytes are refused; the message shows them escaped.
  for (const std::string& text :
       {std::string("127.0.0.1\n:80"), std::string("127.0.0.1\0junk:80", 17)}) {
    try {
      ListenAddress::parse(text);
      FAIL("accepted a control byte");
    } catch (const tier::InvalidArgument& e) {
      CHECK_THAT(std::string(e.what()), Catch::Contains("control byte"));
    }
  }
}

TEST_CASE("http: a request split into 1-byte reads is reassembled", "[http]") {
  TestLoop loop;
  auto server = make_server(loop);
  RawClient c(server->port());
  std::string req = get("/echo?split=yes", "X-Tag: pieces\r\nX-Other: ignored\r\n") +
                    get("/echo?second=1", "X-Tag: two\r\n");
  for (std::size_t i = 0; i < req.size(); ++i) {
    c.send(loop, std::string(1, req[i]));
    // The server reads each byte on its own before the next one is sent.
    REQUIRE(loop.run_until([&] { return server->stats().bytes_read == i + 1; }, 5s));
  }
  REQUIRE(c.wait_responses(loop, 2));
  CHECK(c.responses()[0].body == "split=yes|pieces");
  CHECK(c.responses()[1].body == "second=1|two");
  close_server(loop, *server);
}

TEST_CASE("http: a client that resets mid-response does not disturb the server", "[http]") {
  TestLoop loop;
  auto server = make_server(loop);
  for (int round = 0; round < 5; ++round) {
    auto c = std::make_unique<RawClient>(server->port());
    std::string batch;
    for (int i = 0; i < 500; ++i) {
      batch += get("/big");
    }
    c->send(loop, batch);
    loop.run_until([&] { return server->stats().requests >= 100u * (round + 1); }, 2s);
    c->reset();  // RST with unread answers in flight
    c.reset();
  }
  REQUIRE(loop.run_until([&] { return server->stats().open_connections == 0; }));
  RawClient ok(server->port());
  ok.send(loop, get("/healthz"));
  REQUIRE(ok.wait_responses(loop, 1));
  CHECK(ok.responses()[0].status == 200);
  close_server(loop, *server);
}

// Findings of a conformance probe (RFC 9110/9112), each against the real server.

TEST_CASE("http: requests pipelined after Upgrade: or CONNECT are answered", "[http]") {
  TestLoop loop;
  auto server = make_server(loop);
  RawClient c(server->port());
  c.send(loop, get("/echo?u=1", "Connection: Upgrade\r\nUpgrade: websocket\r\n") +
                   "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n" +
                   get("/echo?after=1"));
  // Before the fix the last two waited for the 10 s idle timeout.
  REQUIRE(c.wait_responses(loop, 3, 2s));
  auto r = c.responses();
  CHECK(r[0].status == 200);  // Upgrade ignored: answered as a plain request
  CHECK(r[0].body == "u=1|");
  CHECK(r[1].status == 501);  // not a proxy
  CHECK(r[2].status == 200);
  CHECK(r[2].body == "after=1|");
  CHECK_FALSE(c.eof());
  close_server(loop, *server);
}

TEST_CASE("http: Expect: 100-continue gets 100 before the body, other expectations 417", "[http]") {
  TestLoop loop;
  auto server = make_server(loop);
  {
    RawClient c(server->port());
    c.send(loop,
           "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    // The client waits for the interim answer before it sends the body.
    REQUIRE(c.wait_responses(loop, 1, 2s));
    CHECK(c.responses()[0].status == 100);
    c.send(loop, "hello");
    REQUIRE(c.wait_responses(loop, 2, 2s));
    CHECK(c.responses()[1].status == 200);
    CHECK(c.responses()[1].body == "body=hello");
  }
  {
    RawClient c(server->port());
    c.send(loop, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: teapot\r\n\r\n");
    REQUIRE(c.wait_responses(loop, 1, 2s));
    CHECK(c.responses()[0].status == 417);
    CHECK(c.wait_eof(loop, 2s));
  }
  {
    // A body that cannot fit gets its final answer instead of 100.
    RawClient c(server->port());
    c.send(loop,
           "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999\r\n"
           "Expect: 100-continue\r\n\r\n");
    REQUIRE(c.wait_responses(loop, 1, 2s));
    CHECK(c.responses()[0].status == 413);
  }
  close_server(loop, *server);
}

TEST_CASE("http: absolute-form targets route on their path", "[http]") {
  TestLoop loop;
  auto server = make_server(loop);
  RawClient c(server->port());
  c.send(loop, get("http://t/healthz") + get("HTTP://T:9464/echo?x=1") + get("http://t"));
  REQUIRE(c.wait_responses(loop, 3, 2s));
  auto r = c.responses();
  CHECK(r[0].status == 200);
  CHECK(r[0].body == "ok\n");
  CHECK(r[1].status == 200);
  CHECK(r[1].body == "x=1|");
  CHECK(r[2].status == 404);  // path "/"
  close_server(loop, *server);
}

TEST_CASE("http: a chunk larger than the limit is refused at once", "[http]") {
  TestLoop loop;
  auto server = make_server(loop);
  RawClient c(server->port());
  c.send(loop,
         "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
         "7FFFFFFFFFFFFFFF\r\n");
  REQUIRE(c.wait_responses(loop, 1, 2s));
  CHECK(c.responses()[0].status == 413);
  CHECK(c.wait_eof(loop, 2s));
  // Small chunks within the limit are fine.
  RawClient ok(server->port());
  ok.send(loop,
          "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
          "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
  REQUIRE(ok.wait_responses(loop, 1, 2s));
  CHECK(ok.responses()[0].body == "body=abcde");
  close_server(loop, *server);
}

TEST_CASE("http: a version other than HTTP/1.x gets 505", "[http]") {
  TestLoop loop;
  auto server = make_server(loop);
  for (const char* version : {"HTTP/9.9", "HTTP/2.0", "HTTP/0.9"}) {
    RawClient c(server->port());
    c.send(loop, std::string("GET /healthz ") + version + "\r\nHost: t\r\n\r\n");
    REQUIRE(c.wait_responses(loop, 1, 2s));
    INFO(version);
    CHECK(c.responses()[0].status == 505);
  }
  RawClient c(server->port());
  c.send(loop, "GET /healthz HTTP/1.0\r\n\r\n");
  REQUIRE(c.wait_responses(loop, 1, 2s));
  CHECK(c.responses()[0].status == 200);
  close_server(loop, *server);
}
