#include "tier/uv/http_client.hpp"

#include <curl/curl.h>
#include <uv.h>

#include <cctype>
#include <map>
#include <mutex>
#include <string_view>
#include <vector>

#include "tier/sigpipe.hpp"
#include "tier/uv/handle.hpp"

namespace tier::uv {

namespace {

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace

struct HttpClient::Impl : std::enable_shared_from_this<Impl> {
  struct Transfer {
    CURL* easy = nullptr;
    curl_slist* headers = nullptr;
    HttpRequest request;
    HttpResponse response;
    std::function<void(Result<HttpResponse>)> done;
    std::size_t body_limit = 0;
    char error[CURL_ERROR_SIZE] = {0};
  };

  Impl(uv_loop_t* l, HttpClientOptions o) : loop(l), options(std::move(o)), timer(l) {
    global_init();
    ignore_sigpipe();
    multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, &Impl::on_socket);
    curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, &Impl::on_timer);
    curl_multi_setopt(multi, CURLMOPT_TIMERDATA, this);
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, options.max_idle_connections);
  }

  ~Impl() { shutdown(false); }

  void request(HttpRequest req, std::function<void(Result<HttpResponse>)> done) {
    if (closed) {
      done(Error{ErrorKind::closed, "http: client closed"});
      return;
    }
    if (!(req.url.starts_with("http://") || req.url.starts_with("https://"))) {
      done(Error{ErrorKind::invalid, "http: only http:// and https:// URLs are allowed"});
      return;
    }
    if (req.method != "POST" && req.method != "GET" && req.method != "PUT" &&
        req.method != "HEAD") {
      done(Error{ErrorKind::invalid, "http: method " + req.method + " is not supported"});
      return;
    }
    auto t = std::make_unique<Transfer>();
    t->request = std::move(req);
    t->done = std::move(done);
    CURL* e = nullptr;
    if (!idle.empty()) {
      e = idle.back();
      idle.pop_back();
      curl_easy_reset(e);  // options back to defaults; buffers kept
    } else {
      e = curl_easy_init();
    }
    if (e == nullptr) {
      t->done(Error{ErrorKind::io, "http: out of memory"});
      return;
    }
    t->easy = e;
    const auto& r = t->request;
    curl_easy_setopt(e, CURLOPT_URL, r.url.c_str());
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(e, CURLOPT_PROTOCOLS, CURLPROTO_HTTP | CURLPROTO_HTTPS);
#endif
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 4096L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
                     static_cast<long>(std::max<std::int64_t>(1, r.timeout.count())));
    curl_easy_setopt(e, CURLOPT_USERAGENT, options.user_agent.c_str());
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->error);
    curl_easy_setopt(e, CURLOPT_PRIVATE, t.get());
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &Impl::on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t.get());
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &Impl::on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, t.get());
    if (r.method == "HEAD") {
      curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (r.method == "POST" || r.method == "PUT") {
      if (r.method == "PUT") {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "PUT");
      }
      curl_easy_setopt(e, CURLOPT_POST, 1L);
      curl_easy_setopt(e, CURLOPT_POSTFIELDS, r.body.data());
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.body.size()));
    }
    for (const auto& h : r.headers) {
      t->headers = curl_slist_append(t->headers, h.c_str());
    }
    // No "Expect: 100-continue" round trip before a body.
    t->headers = curl_slist_append(t->headers, "Expect:");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
    t->body_limit = options.max_response_bytes;
    Transfer* raw = t.get();
    transfers.emplace(raw, std::move(t));
    if (curl_multi_add_handle(multi, e) != CURLM_OK) {
      finish(raw, Error{ErrorKind::io, "http: cannot start the request"});
    }
  }

  static std::size_t on_body(char* data, std::size_t size, std::size_t n, void* userp) {
    auto* t = static_cast<Transfer*>(userp);
    const std::size_t bytes = size * n;
    auto& body = t->response.body;
    // Kept up to the limit; the rest is read and dropped (the connection stays usable).
    const std::size_t room = body.size() < t->body_limit ? t->body_limit - body.size() : 0;
    body.append(data, std::min(bytes, room));
    return bytes;
  }

  static std::size_t on_header(char* data, std::size_t size, std::size_t n, void* userp) {
    auto* t = static_cast<Transfer*>(userp);
    const std::size_t bytes = size * n;
    std::string_view line(data, bytes);
    const auto colon = line.find(':');
    if (colon != std::string_view::npos && t->response.headers.size() < 100) {
      std::string name(line.substr(0, colon));
      for (auto& c : name) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      }
      std::string_view value = line.substr(colon + 1);
      while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
        value.remove_prefix(1);
      }
      while (!value.empty() &&
             (value.back() == '\r' || value.back() == '\n' || value.back() == ' ')) {
        value.remove_suffix(1);
      }
      t->response.headers.emplace_back(std::move(name), std::string(value.substr(0, 1024)));
    }
    return bytes;
  }

  static int on_socket(CURL*, curl_socket_t s, int action, void* userp, void* socketp) {
    auto* self = static_cast<Impl*>(userp);
    auto* poll = static_cast<Poll*>(socketp);
    if (action == CURL_POLL_REMOVE) {
      if (poll != nullptr) {
        curl_multi_assign(self->multi, s, nullptr);
        self->polls.erase(s);  // closes the handle; libuv frees it later
      }
      return 0;
    }
    if (poll == nullptr) {
      auto p = std::make_unique<Poll>(self->loop, s);
      poll = p.get();
      self->polls[s] = std::move(p);
      curl_multi_assign(self->multi, s, poll);
    }
    int events = 0;
    if ((action & CURL_POLL_IN) != 0) {
      events |= UV_READABLE;
    }
    if ((action & CURL_POLL_OUT) != 0) {
      events |= UV_WRITABLE;
    }
    poll->start(events, [self, s](int status, int ev) {
      int flags = 0;
      if (status < 0) {
        flags = CURL_CSELECT_ERR;
      }
      if ((ev & UV_READABLE) != 0) {
        flags |= CURL_CSELECT_IN;
      }
      if ((ev & UV_WRITABLE) != 0) {
        flags |= CURL_CSELECT_OUT;
      }
      auto keep = self->shared_from_this();
      int running = 0;
      curl_multi_socket_action(self->multi, s, flags, &running);
      self->collect();
    });
    return 0;
  }

  static int on_timer(CURLM*, long timeout_ms, void* userp) {
    auto* self = static_cast<Impl*>(userp);
    if (timeout_ms < 0) {
      self->timer.stop();
      return 0;
    }
    self->timer.start(std::chrono::milliseconds(timeout_ms), std::chrono::milliseconds(0), [self] {
      auto keep = self->shared_from_this();
      int running = 0;
      curl_multi_socket_action(self->multi, CURL_SOCKET_TIMEOUT, 0, &running);
      self->collect();
    });
    return 0;
  }

  // Completes the transfers libcurl has finished.
  void collect() {
    int left = 0;
    while (CURLMsg* m = curl_multi_info_read(multi, &left)) {
      if (m->msg != CURLMSG_DONE) {
        continue;
      }
      Transfer* t = nullptr;
      curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &t);
      const CURLcode code = m->data.result;
      if (code == CURLE_OK) {
        curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->response.status);
        finish(t, std::move(t->response));
      } else {
        const std::string why = t->error[0] != '\0' ? t->error : curl_easy_strerror(code);
        const ErrorKind kind = code == CURLE_OPERATION_TIMEDOUT ? ErrorKind::timeout
                               : code == CURLE_URL_MALFORMAT || code == CURLE_UNSUPPORTED_PROTOCOL
                                   ? ErrorKind::invalid
                                   : ErrorKind::io;
        finish(t, Error{kind, "http: " + why});
      }
    }
  }

  void finish(Transfer* t, Result<HttpResponse> r) {
    auto it = transfers.find(t);
    if (it == transfers.end()) {
      return;
    }
    std::unique_ptr<Transfer> owned = std::move(it->second);
    transfers.erase(it);
    curl_multi_remove_handle(multi, owned->easy);
    if (!closed && idle.size() < options.max_idle_handles) {
      idle.push_back(owned->easy);
    } else {
      curl_easy_cleanup(owned->easy);
    }
    curl_slist_free_all(owned->headers);
    if (owned->done) {
      owned->done(std::move(r));
    }
  }

  void shutdown(bool call_back) {
    closed = true;
    while (!transfers.empty()) {
      Transfer* t = transfers.begin()->first;
      if (!call_back) {
        t->done = nullptr;
      }
      finish(t, Error{ErrorKind::closed, "http: client closed"});
    }
    for (CURL* e : idle) {
      curl_easy_cleanup(e);
    }
    idle.clear();
    timer.close();
    polls.clear();
    if (multi != nullptr) {
      curl_multi_cleanup(multi);
      multi = nullptr;
    }
  }

  uv_loop_t* loop;
  HttpClientOptions options;
  CURLM* multi = nullptr;
  Timer timer;
  std::map<curl_socket_t, std::unique_ptr<Poll>> polls;
  std::map<Transfer*, std::unique_ptr<Transfer>> transfers;
  std::vector<CURL*> idle;  ///< finished easy handles, reset and reused
  bool closed = false;
};

HttpClient::HttpClient(uv_loop_t* loop, HttpClientOptions options)
    : impl_(std::make_shared<Impl>(loop, std::move(options))) {}

HttpClient::~HttpClient() {
  impl_->shutdown(false);
}

void HttpClient::request(HttpRequest request, std::function<void(Result<HttpResponse>)> done) {
  impl_->request(std::move(request), std::move(done));
}

void HttpClient::close() {
  auto keep = impl_;
  keep->shutdown(true);
}

std::size_t HttpClient::active() const {
  return impl_->transfers.size();
}

}  // namespace tier::uv
