#include "daemon/http.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
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

// Fills a sockaddr for a numeric host; "localhost" is the only name accepted (no resolver).
bool make_sockaddr(const std::string& host, int port, sockaddr_storage& out) {
  std::string numeric = host == "localhost" ? "127.0.0.1" : host;
  if (numeric.find(':') != std::string::npos) {
    return uv_ip6_addr(numeric.c_str(), port, reinterpret_cast<sockaddr_in6*>(&out)) == 0;
  }
  return uv_ip4_addr(numeric.c_str(), port, reinterpret_cast<sockaddr_in*>(&out)) == 0;
}

}  // namespace

namespace {

struct Connection {
  HttpServer::Impl* server = nullptr;
  uv_tcp_t tcp{};
  uv_timer_t timer{};
  uv_shutdown_t shutdown{};
  std::unique_ptr<HttpSession> session;
  int open_handles = 0;
  bool closing = false;
  bool finishing = false;  // last response queued; shut down once it is written
  bool read_paused = false;
  bool rejected = false;  // over max_connections: not counted as open
};

struct WriteReq {
  uv_write_t req{};
  std::string data;
};

}  // namespace

struct HttpServer::Impl {
  uv_loop_t* loop;
  HttpOptions options;
  HttpRoutes routes;
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
  char read_buf[kReadBufferBytes];

  Impl(uv_loop_t* l, HttpOptions o) : loop(l), options(std::move(o)) {}

  void on_connection(int status);
  void start_connection(Connection* c);
  void feed(Connection* c, std::string_view data);
  void write(Connection* c, std::string data);
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
    std::string out;
    write_response(out, r, false, false);
    write(c, std::move(out));
    finish(c);
    return;
  }
  stats.open_connections++;
  start_connection(c);
}

void HttpServer::Impl::start_connection(Connection* c) {
  c->session = std::make_unique<HttpSession>(routes, options.max_request_bytes, &stats);
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
    conn->server->stats.bytes_read += static_cast<std::uint64_t>(nread);
    conn->server->feed(conn, std::string_view(buf->base, static_cast<std::size_t>(nread)));
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

void HttpServer::Impl::feed(Connection* c, std::string_view data) {
  if (c->closing || c->finishing) {
    return;
  }
  const std::uint64_t answered = c->session->answered();
  std::string out;
  c->session->feed(data, out, kMaxUnsentBytes);
  if (!out.empty()) {
    write(c, std::move(out));
  }
  if (c->closing) {
    return;
  }
  if (c->session->done()) {
    finish(c);
    return;
  }
  if (c->session->answered() != answered) {
    // The client must deliver its next request within a fresh timeout.
    arm_timer(c, options.idle_timeout_ms);
  }
  if (c->session->blocked() && !c->read_paused) {
    // Answers pile up faster than the client takes them: stop reading until it does, so a
    // client that sends without reading cannot make us buffer without bound.
    uv_read_stop(reinterpret_cast<uv_stream_t*>(&c->tcp));
    c->read_paused = true;
    stats.paused_reads++;
  }
}

void HttpServer::Impl::maybe_resume(Connection* c) {
  if (!c->read_paused || c->closing || c->finishing ||
      uv_stream_get_write_queue_size(reinterpret_cast<uv_stream_t*>(&c->tcp)) > 0) {
    return;
  }
  c->read_paused = false;
  feed(c, {});  // what was held back
  if (!c->read_paused && !c->closing && !c->finishing) {
    uv_read_start(reinterpret_cast<uv_stream_t*>(&c->tcp), &Impl::alloc_cb, &Impl::read_cb);
  }
}

void HttpServer::Impl::write(Connection* c, std::string data) {
  auto* w = new WriteReq();
  w->data = std::move(data);
  uv_buf_t buf = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
  int rc = uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&c->tcp), &buf, 1,
                    [](uv_write_t* req, int status) {
                      auto* conn = static_cast<Connection*>(req->handle->data);
                      delete reinterpret_cast<WriteReq*>(req);
                      if (conn->closing) {
                        return;
                      }
                      if (status < 0) {
                        // The peer reset the connection (EPIPE, ECONNRESET): drop it.
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
  impl_->routes.add(method, path,
                    [method, path, handler = std::move(handler)](const HttpRequest& request) {
                      try {
                        return handler(request);
                      } catch (const std::exception& e) {
                        // The client gets 500 (HttpRoutes); the log says which route threw.
                        spdlog::warn("http: handler for {} {} threw: {}", method, path, e.what());
                        throw;
                      } catch (...) {
                        spdlog::warn("http: handler for {} {} threw", method, path);
                        throw;
                      }
                    });
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
