#include "daemon/http.hpp"

#include <http_parser.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <exception>
#include <map>
#include <unordered_set>

#include "tier/errors.hpp"

namespace tierd {

namespace {

constexpr std::size_t kReadBufferBytes = 64 * 1024;
// Responses not yet taken by the peer; above this we stop parsing its pipelined requests until
// it reads, so a client that sends without reading cannot make us buffer without bound.
constexpr std::size_t kMaxUnsentBytes = 256 * 1024;
// A rejected connection (over max_connections) gets this long to take its 503.
constexpr std::uint64_t kRejectTimeoutMs = 1000;

bool iequals(const std::string& a, const std::string& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

bool parse_port(const std::string& text, int& port) {
  if (text.empty() || text.size() > 5) {
    return false;
  }
  int value = 0;
  for (char ch : text) {
    if (ch < '0' || ch > '9') {
      return false;
    }
    value = value * 10 + (ch - '0');
  }
  if (value > 65535) {
    return false;
  }
  port = value;
  return true;
}

// Fills a sockaddr for a numeric host; "localhost" is the only name accepted (no resolver).
bool make_sockaddr(const std::string& host, int port, sockaddr_storage& out) {
  std::string numeric = host == "localhost" ? "127.0.0.1" : host;
  if (numeric.find(':') != std::string::npos) {
    return uv_ip6_addr(numeric.c_str(), port, reinterpret_cast<sockaddr_in6*>(&out)) == 0;
  }
  return uv_ip4_addr(numeric.c_str(), port, reinterpret_cast<sockaddr_in*>(&out)) == 0;
}

}  // namespace

ListenAddress ListenAddress::parse(const std::string& text) {
  auto fail = [&](const std::string& why) -> ListenAddress {
    throw tier::InvalidArgument("invalid listen address '" + text + "': " + why +
                                " (expected host:port, e.g. 127.0.0.1:9464 or [::1]:9464)");
  };
  ListenAddress out;
  std::string port_text;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string::npos) {
      return fail("missing ']' after an IPv6 address");
    }
    out.host = text.substr(1, close - 1);
    if (close + 1 >= text.size() || text[close + 1] != ':') {
      return fail("missing ':port' after ']'");
    }
    port_text = text.substr(close + 2);
    if (out.host.find(':') == std::string::npos) {
      return fail("brackets are only for IPv6 addresses");
    }
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string::npos) {
      return fail("missing ':port'");
    }
    out.host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
    if (out.host.find(':') != std::string::npos) {
      return fail("an IPv6 address must be written in brackets");
    }
  }
  if (out.host.empty()) {
    return fail("empty host");
  }
  if (!parse_port(port_text, out.port)) {
    return fail("port must be a number from 0 to 65535");
  }
  sockaddr_storage ss{};
  if (!make_sockaddr(out.host, out.port, ss)) {
    return fail("host must be a numeric IP address or localhost");
  }
  return out;
}

std::string ListenAddress::to_string() const {
  if (host.find(':') != std::string::npos) {
    return "[" + host + "]:" + std::to_string(port);
  }
  return host + ":" + std::to_string(port);
}

std::string HttpRequest::header(const std::string& name) const {
  for (const auto& [k, v] : headers) {
    if (iequals(k, name)) {
      return v;
    }
  }
  return {};
}

const char* http_reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Unknown";
  }
}

namespace {

struct Connection {
  HttpServer::Impl* server = nullptr;
  uv_tcp_t tcp{};
  uv_timer_t timer{};
  uv_shutdown_t shutdown{};
  http_parser parser{};
  int open_handles = 0;
  bool closing = false;
  bool finishing = false;  // last response queued; shut down once it is written
  bool read_paused = false;
  bool rejected = false;  // over max_connections: not counted as open

  // The request being parsed.
  HttpRequest request;
  std::string url;
  std::string field;
  std::string value;
  bool in_value = false;
  std::size_t header_bytes = 0;
  int reject_status = 0;      // set by a parser callback that refuses the request
  std::string pending_input;  // bytes read while parsing was paused
};

struct WriteReq {
  uv_write_t req{};
  std::string data;
};

}  // namespace

struct HttpServer::Impl {
  uv_loop_t* loop;
  HttpOptions options;
  std::map<std::string, std::map<std::string, HttpHandler>> routes;  // path -> method -> handler
  uv_tcp_t listener{};
  bool listener_open = false;
  bool listening = false;
  int bound_port = 0;
  std::unordered_set<Connection*> conns;
  HttpStats stats;
  bool closing = false;
  bool closed = false;
  bool orphaned = false;  // the HttpServer is gone: delete ourselves once closed
  std::vector<std::function<void()>> on_closed;
  http_parser_settings settings{};
  char read_buf[kReadBufferBytes];

  Impl(uv_loop_t* l, HttpOptions o) : loop(l), options(std::move(o)) { init_settings(); }

  void init_settings();
  void on_connection(int status);
  void start_connection(Connection* c);
  void feed(Connection* c, const char* data, std::size_t len);
  void dispatch(Connection* c, bool keep_alive);
  void send(Connection* c, const HttpResponse& response, bool keep_alive, bool head);
  void fail(Connection* c, int status);
  void finish(Connection* c);
  void close_connection(Connection* c);
  void handle_closed(Connection* c);
  void arm_timer(Connection* c, std::uint64_t ms);
  void maybe_resume(Connection* c);
  static void alloc_cb(uv_handle_t* h, std::size_t size, uv_buf_t* buf);
  static void read_cb(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf);
  void begin_close();
  void maybe_finish_close();
};

namespace {

Connection* conn_of(http_parser* p) {
  return static_cast<Connection*>(p->data);
}

// Counts request-line and header bytes; a request whose head outgrows the limit is refused.
int count_head(Connection* c, std::size_t len, int status) {
  c->header_bytes += len;
  if (c->header_bytes > c->server->options.max_request_bytes) {
    c->reject_status = status;
    return -1;
  }
  return 0;
}

void push_header(Connection* c) {
  if (!c->field.empty() || !c->value.empty()) {
    c->request.headers.emplace_back(std::move(c->field), std::move(c->value));
  }
  c->field.clear();
  c->value.clear();
  c->in_value = false;
}

}  // namespace

void HttpServer::Impl::init_settings() {
  http_parser_settings_init(&settings);
  settings.on_message_begin = [](http_parser* p) {
    Connection* c = conn_of(p);
    c->request = HttpRequest{};
    c->url.clear();
    c->field.clear();
    c->value.clear();
    c->in_value = false;
    c->header_bytes = 0;
    return 0;
  };
  settings.on_url = [](http_parser* p, const char* at, std::size_t len) {
    Connection* c = conn_of(p);
    c->url.append(at, len);
    return count_head(c, len, 414);
  };
  settings.on_header_field = [](http_parser* p, const char* at, std::size_t len) {
    Connection* c = conn_of(p);
    // A new header also costs its ": " and CRLF on the wire; counting them keeps many tiny
    // headers from slipping under the limit.
    bool new_field = c->in_value || c->field.empty();
    if (c->in_value) {
      push_header(c);
    }
    c->field.append(at, len);
    return count_head(c, len + (new_field ? 4 : 0), 431);
  };
  settings.on_header_value = [](http_parser* p, const char* at, std::size_t len) {
    Connection* c = conn_of(p);
    c->in_value = true;
    c->value.append(at, len);
    return count_head(c, len, 431);
  };
  settings.on_headers_complete = [](http_parser* p) {
    Connection* c = conn_of(p);
    push_header(c);
    c->request.method = http_method_str(static_cast<http_method>(p->method));
    auto q = c->url.find('?');
    c->request.path = c->url.substr(0, q);
    if (q != std::string::npos) {
      c->request.query = c->url.substr(q + 1);
    }
    // Refuse a declared body that cannot fit before reading any of it.
    std::size_t limit = c->server->options.max_request_bytes;
    std::size_t room = limit - std::min(c->header_bytes, limit);
    if (p->content_length != ULLONG_MAX && p->content_length > room) {
      c->reject_status = 413;
      return -1;
    }
    return 0;
  };
  settings.on_body = [](http_parser* p, const char* at, std::size_t len) {
    Connection* c = conn_of(p);
    if (c->header_bytes + c->request.body.size() + len > c->server->options.max_request_bytes) {
      c->reject_status = 413;
      return -1;
    }
    c->request.body.append(at, len);
    return 0;
  };
  settings.on_message_complete = [](http_parser* p) {
    Connection* c = conn_of(p);
    bool keep_alive = http_should_keep_alive(p) != 0;
    c->server->dispatch(c, keep_alive);
    if (c->closing || c->finishing) {
      // Nothing after this request is read; stop the parser here.
      return -1;
    }
    // The client must deliver its next request within a fresh timeout.
    c->server->arm_timer(c, c->server->options.idle_timeout_ms);
    if (uv_stream_get_write_queue_size(reinterpret_cast<uv_stream_t*>(&c->tcp)) > kMaxUnsentBytes) {
      http_parser_pause(p, 1);
    }
    return 0;
  };
}

void HttpServer::Impl::arm_timer(Connection* c, std::uint64_t ms) {
  if (ms == 0 || c->closing) {
    uv_timer_stop(&c->timer);
    return;
  }
  uv_timer_start(
      &c->timer,
      [](uv_timer_t* t) {
        auto* conn = static_cast<Connection*>(t->data);
        if (!conn->rejected) {
          conn->server->stats.timed_out_connections++;
        }
        conn->server->close_connection(conn);
      },
      ms, 0);
}

void HttpServer::Impl::on_connection(int status) {
  if (status < 0 || closing) {
    return;
  }
  auto* c = new Connection();
  c->server = this;
  uv_tcp_init(loop, &c->tcp);
  uv_timer_init(loop, &c->timer);
  c->tcp.data = c;
  c->timer.data = c;
  c->open_handles = 2;
  conns.insert(c);
  if (uv_accept(reinterpret_cast<uv_stream_t*>(&listener),
                reinterpret_cast<uv_stream_t*>(&c->tcp)) != 0) {
    c->rejected = true;
    close_connection(c);
    return;
  }
  if (options.max_connections != 0 && stats.open_connections >= options.max_connections) {
    c->rejected = true;
    stats.rejected_connections++;
    arm_timer(c, kRejectTimeoutMs);
    HttpResponse r;
    r.status = 503;
    r.body = "too many connections\n";
    send(c, r, false, false);
    finish(c);
    return;
  }
  stats.open_connections++;
  start_connection(c);
}

void HttpServer::Impl::start_connection(Connection* c) {
  http_parser_init(&c->parser, HTTP_REQUEST);
  c->parser.data = c;
  arm_timer(c, options.idle_timeout_ms);
  uv_read_start(reinterpret_cast<uv_stream_t*>(&c->tcp), &Impl::alloc_cb, &Impl::read_cb);
}

void HttpServer::Impl::alloc_cb(uv_handle_t* h, std::size_t, uv_buf_t* buf) {
  auto* conn = static_cast<Connection*>(h->data);
  // One buffer for all connections: each read is parsed completely before the next one.
  buf->base = conn->server->read_buf;
  buf->len = kReadBufferBytes;
}

void HttpServer::Impl::read_cb(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
  auto* conn = static_cast<Connection*>(s->data);
  if (nread > 0) {
    conn->server->feed(conn, buf->base, static_cast<std::size_t>(nread));
  } else if (nread < 0) {
    // EOF or error: answers already queued still go out (a client may send its requests and
    // half-close), then the connection is shut down.
    uv_read_stop(s);
    if (nread == UV_EOF && uv_stream_get_write_queue_size(s) > 0) {
      conn->server->finish(conn);
    } else {
      conn->server->close_connection(conn);
    }
  }
}

void HttpServer::Impl::feed(Connection* c, const char* data, std::size_t len) {
  if (c->closing || c->finishing) {
    return;
  }
  std::size_t parsed = http_parser_execute(&c->parser, &settings, data, len);
  if (c->closing || c->finishing) {
    return;
  }
  auto err = HTTP_PARSER_ERRNO(&c->parser);
  if (err == HPE_PAUSED) {
    c->pending_input.assign(data + parsed, len - parsed);
    uv_read_stop(reinterpret_cast<uv_stream_t*>(&c->tcp));
    c->read_paused = true;
    return;
  }
  if (c->reject_status != 0) {
    fail(c, c->reject_status);
  } else if (err == HPE_HEADER_OVERFLOW) {
    fail(c, 431);
  } else if (err != HPE_OK) {
    fail(c, 400);
  }
}

void HttpServer::Impl::maybe_resume(Connection* c) {
  if (!c->read_paused || c->closing || c->finishing ||
      uv_stream_get_write_queue_size(reinterpret_cast<uv_stream_t*>(&c->tcp)) > 0) {
    return;
  }
  c->read_paused = false;
  http_parser_pause(&c->parser, 0);
  std::string input = std::move(c->pending_input);
  c->pending_input.clear();
  feed(c, input.data(), input.size());
  if (!c->read_paused && !c->closing && !c->finishing) {
    uv_read_start(reinterpret_cast<uv_stream_t*>(&c->tcp), &Impl::alloc_cb, &Impl::read_cb);
  }
}

void HttpServer::Impl::dispatch(Connection* c, bool keep_alive) {
  const HttpRequest& req = c->request;
  bool head = req.method == "HEAD";
  HttpResponse response;
  auto path_it = routes.find(req.path);
  if (path_it == routes.end()) {
    response.status = 404;
    response.body = "not found\n";
  } else {
    const auto& methods = path_it->second;
    auto m = methods.find(head ? std::string("GET") : req.method);
    if (head && m == methods.end()) {
      m = methods.find("HEAD");
    }
    if (m == methods.end()) {
      response.status = 405;
      response.body = "method not allowed\n";
      std::string allow;
      for (const auto& [name, _] : methods) {
        allow += (allow.empty() ? "" : ", ") + name;
        if (name == "GET") {
          allow += ", HEAD";
        }
      }
      response.headers.emplace_back("Allow", allow);
    } else {
      try {
        response = m->second(req);
      } catch (const std::exception& e) {
        // A handler bug must not take the daemon down; the client sees 500.
        spdlog::warn("http: handler for {} {} threw: {}", req.method, req.path, e.what());
        response = HttpResponse{};
        response.status = 500;
        response.body = "internal error\n";
      }
    }
  }
  stats.requests++;
  send(c, response, keep_alive, head);
  if (!keep_alive) {
    finish(c);
  }
}

void HttpServer::Impl::send(Connection* c, const HttpResponse& r, bool keep_alive, bool head) {
  auto* w = new WriteReq();
  std::string& out = w->data;
  out.reserve(160 + (head ? 0 : r.body.size()));
  out += "HTTP/1.1 ";
  out += std::to_string(r.status);
  out += ' ';
  out += http_reason(r.status);
  out += "\r\nContent-Type: ";
  out += r.content_type;
  out += "\r\nContent-Length: ";
  out += std::to_string(r.body.size());
  out += keep_alive ? "\r\nConnection: keep-alive\r\n" : "\r\nConnection: close\r\n";
  for (const auto& [k, v] : r.headers) {
    out += k;
    out += ": ";
    out += v;
    out += "\r\n";
  }
  out += "\r\n";
  if (!head) {
    out += r.body;
  }
  uv_buf_t buf = uv_buf_init(out.data(), static_cast<unsigned>(out.size()));
  int rc = uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&c->tcp), &buf, 1,
                    [](uv_write_t* req, int status) {
                      auto* conn = static_cast<Connection*>(req->handle->data);
                      delete reinterpret_cast<WriteReq*>(req);
                      if (conn->closing) {
                        return;
                      }
                      if (status < 0) {
                        conn->server->close_connection(conn);
                        return;
                      }
                      conn->server->maybe_resume(conn);
                    });
  if (rc != 0) {
    delete w;
    close_connection(c);
  }
}

void HttpServer::Impl::fail(Connection* c, int status) {
  stats.bad_requests++;
  HttpResponse r;
  r.status = status;
  r.body = std::string(http_reason(status)) + "\n";
  send(c, r, false, false);
  finish(c);
}

void HttpServer::Impl::finish(Connection* c) {
  if (c->closing || c->finishing) {
    return;
  }
  c->finishing = true;
  uv_read_stop(reinterpret_cast<uv_stream_t*>(&c->tcp));
  // The peer gets a bounded time to take the last response (it may never read).
  if (!c->rejected) {
    arm_timer(c, options.idle_timeout_ms == 0 ? 10'000 : options.idle_timeout_ms);
  }
  c->shutdown.data = c;
  int rc = uv_shutdown(&c->shutdown, reinterpret_cast<uv_stream_t*>(&c->tcp),
                       [](uv_shutdown_t* req, int) {
                         auto* conn = static_cast<Connection*>(req->data);
                         conn->server->close_connection(conn);
                       });
  if (rc != 0) {
    close_connection(c);
  }
}

void HttpServer::Impl::close_connection(Connection* c) {
  if (c->closing) {
    return;
  }
  c->closing = true;
  if (!c->rejected) {
    stats.open_connections--;
  }
  auto on_close = [](uv_handle_t* h) {
    auto* conn = static_cast<Connection*>(h->data);
    conn->server->handle_closed(conn);
  };
  uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp), on_close);
  uv_close(reinterpret_cast<uv_handle_t*>(&c->timer), on_close);
}

void HttpServer::Impl::handle_closed(Connection* c) {
  if (--c->open_handles > 0) {
    return;
  }
  conns.erase(c);
  delete c;
  maybe_finish_close();
}

void HttpServer::Impl::begin_close() {
  closing = true;
  if (listener_open && !uv_is_closing(reinterpret_cast<uv_handle_t*>(&listener))) {
    uv_close(reinterpret_cast<uv_handle_t*>(&listener), [](uv_handle_t* h) {
      auto* self = static_cast<Impl*>(h->data);
      self->listener_open = false;
      self->maybe_finish_close();
    });
  }
  std::vector<Connection*> all(conns.begin(), conns.end());
  for (Connection* c : all) {
    close_connection(c);
  }
  maybe_finish_close();
}

void HttpServer::Impl::maybe_finish_close() {
  if (!closing || closed || listener_open || !conns.empty()) {
    return;
  }
  closed = true;
  auto callbacks = std::move(on_closed);
  on_closed.clear();
  for (auto& cb : callbacks) {
    if (cb) {
      cb();
    }
  }
  if (orphaned) {
    delete this;
  }
}

HttpServer::HttpServer(uv_loop_t* loop, HttpOptions options)
    : impl_(new Impl(loop, std::move(options))) {}

HttpServer::~HttpServer() {
  impl_->on_closed.clear();  // whatever the callbacks referred to may be gone with us
  if (impl_->closed) {
    delete impl_;
    return;
  }
  impl_->orphaned = true;
  impl_->begin_close();  // may delete impl_ at once when nothing was open
}

void HttpServer::route(const std::string& method, const std::string& path, HttpHandler handler) {
  impl_->routes[path][method] = std::move(handler);
}

tier::Status HttpServer::start() {
  Impl& s = *impl_;
  std::string where = ListenAddress{s.options.host, s.options.port}.to_string();
  if (s.listener_open || s.closing) {
    return tier::make_error(tier::ErrorKind::invalid,
                            "http server on " + where + " already started");
  }
  sockaddr_storage addr{};
  if (s.options.port < 0 || s.options.port > 65535 ||
      !make_sockaddr(s.options.host, s.options.port, addr)) {
    return tier::make_error(tier::ErrorKind::invalid,
                            "http listen address " + where +
                                ": host must be a numeric IP address or localhost, port 0-65535");
  }
  uv_tcp_init(s.loop, &s.listener);
  s.listener.data = &s;
  s.listener_open = true;
  int rc = uv_tcp_bind(&s.listener, reinterpret_cast<const sockaddr*>(&addr), 0);
  if (rc == 0) {
    rc = uv_listen(reinterpret_cast<uv_stream_t*>(&s.listener), 128,
                   [](uv_stream_t* server, int status) {
                     static_cast<Impl*>(server->data)->on_connection(status);
                   });
  }
  if (rc != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(&s.listener), [](uv_handle_t* h) {
      auto* self = static_cast<Impl*>(h->data);
      self->listener_open = false;
      self->maybe_finish_close();
    });
    return tier::make_error(tier::ErrorKind::io,
                            "http: cannot listen on " + where + ": " + uv_strerror(rc));
  }
  sockaddr_storage bound{};
  int len = sizeof(bound);
  uv_tcp_getsockname(&s.listener, reinterpret_cast<sockaddr*>(&bound), &len);
  s.bound_port = bound.ss_family == AF_INET6
                     ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                     : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  s.listening = true;
  return tier::Unit{};
}

int HttpServer::port() const {
  return impl_->bound_port;
}

void HttpServer::close(std::function<void()> done) {
  if (impl_->closed) {
    if (done) {
      done();
    }
    return;
  }
  impl_->on_closed.push_back(std::move(done));
  impl_->begin_close();
}

HttpStats HttpServer::stats() const {
  return impl_->stats;
}

}  // namespace tierd
