#include "daemon/http_session.hpp"

#include <http_parser.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <exception>

namespace tierd {

namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

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
    case 100:
      return "Continue";
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
    case 417:
      return "Expectation Failed";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

void write_response(std::string& out, const HttpResponse& r, bool keep_alive, bool head) {
  out.reserve(out.size() + 160 + (head ? 0 : r.body.size()));
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
}

void HttpRoutes::add(const std::string& method, const std::string& path, HttpHandler handler) {
  routes_[path][method] = std::move(handler);
}

HttpResponse HttpRoutes::answer(const HttpRequest& req) const {
  HttpResponse response;
  const bool head = req.method == "HEAD";
  auto path_it = routes_.find(req.path);
  if (path_it == routes_.end()) {
    response.status = 404;
    response.body = "not found\n";
    return response;
  }
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
    return response;
  }
  try {
    return m->second(req);
  } catch (...) {  // nothing may cross http_parser's C callbacks
    response = HttpResponse{};
    response.status = 500;
    response.body = "internal error\n";
    return response;
  }
}

struct HttpSession::State {
  const HttpRoutes& routes;
  std::size_t max_request_bytes;
  HttpStats* stats;
  http_parser parser{};

  // The request being parsed.
  HttpRequest request;
  std::string url;
  std::string field;
  std::string value;
  bool in_value = false;
  bool in_request = false;
  bool line_done = false;  // the request line has been read (a header or the end came)
  bool head_done = false;  // the header block has been read
  int reject_status = 0;   // set by a callback that refuses the request

  std::string held;  // input not parsed yet because the output was full
  std::string* out = nullptr;
  std::size_t max_output = 0;
  bool reinit = false;  // the last request carried Upgrade: or was CONNECT
  bool done = false;
  std::uint64_t answered = 0;

  State(const HttpRoutes& r, std::size_t max, HttpStats* s)
      : routes(r), max_request_bytes(max), stats(s) {
    http_parser_init(&parser, HTTP_REQUEST);
    parser.data = this;
  }

  void refuse(int status) {
    if (stats != nullptr) {
      stats->bad_requests++;
    }
    HttpResponse r;
    r.status = status;
    r.body = std::string(http_reason(status)) + "\n";
    write_response(*out, r, false, false);
    ++answered;
    in_request = false;
    done = true;
  }

  void complete(bool keep_alive) {
    in_request = false;
    ++answered;
    if (stats != nullptr) {
      stats->requests++;
    }
    const bool head = request.method == "HEAD";
    if (request.method == "CONNECT") {
      // Not a proxy. A non-2xx answer leaves the connection in HTTP (RFC 9110 §9.3.6).
      HttpResponse r;
      r.status = 501;
      r.body = "not implemented\n";
      write_response(*out, r, keep_alive, false);
    } else {
      write_response(*out, routes.answer(request), keep_alive, head);
    }
    if (!keep_alive) {
      done = true;
    }
  }

  // Splits the request target into path and query. Origin form (/path?q) is the usual
  // one; absolute form (http://host/path?q) must be accepted too (RFC 9112 §3.2.2).
  bool split_target() {
    if (url.empty()) {
      return false;
    }
    if (url.front() == '/' || url == "*" || request.method == "CONNECT") {
      auto q = url.find('?');
      request.path = url.substr(0, q);
      if (q != std::string::npos && url.front() == '/') {
        request.query = url.substr(q + 1);
      }
      return true;
    }
    http_parser_url u;
    http_parser_url_init(&u);
    if (http_parser_parse_url(url.data(), url.size(), 0, &u) != 0 ||
        (u.field_set & (1 << UF_SCHEMA)) == 0) {
      return false;
    }
    auto field_of = [&](int f) {
      return std::string(url.data() + u.field_data[f].off, u.field_data[f].len);
    };
    request.path = (u.field_set & (1 << UF_PATH)) != 0 ? field_of(UF_PATH) : "/";
    if ((u.field_set & (1 << UF_QUERY)) != 0) {
      request.query = field_of(UF_QUERY);
    }
    return true;
  }

  static http_parser_settings make_settings();
  static const http_parser_settings settings;
};

namespace {

HttpSession::State* state_of(http_parser* p) {
  return static_cast<HttpSession::State*>(p->data);
}

void push_header(HttpSession::State* s) {
  if (!s->field.empty() || !s->value.empty()) {
    s->request.headers.emplace_back(std::move(s->field), std::move(s->value));
  }
  s->field.clear();
  s->value.clear();
  s->in_value = false;
}

// Room left for a body under the limit. The head has a limit of its own (feed()): the
// parser's count of head bytes is not reliable by the time the head is complete, and a
// limit on their sum would then depend on how the request was split into reads.
std::size_t body_room(const HttpSession::State* s) {
  return s->max_request_bytes - std::min(s->request.body.size(), s->max_request_bytes);
}

}  // namespace

http_parser_settings HttpSession::State::make_settings() {
  http_parser_settings settings;
  http_parser_settings_init(&settings);
  settings.on_message_begin = [](http_parser* p) {
    State* s = state_of(p);
    s->request = HttpRequest{};
    s->url.clear();
    s->field.clear();
    s->value.clear();
    s->in_value = false;
    s->in_request = true;
    s->line_done = false;
    s->head_done = false;
    return 0;
  };
  // The size of the head is limited in feed(), by position, not here: callbacks come at
  // token ends or read ends, so a limit checked in them would fire at different bytes for
  // different splits of the same input.
  settings.on_url = [](http_parser* p, const char* at, std::size_t len) {
    state_of(p)->url.append(at, len);
    return 0;
  };
  settings.on_header_field = [](http_parser* p, const char* at, std::size_t len) {
    State* s = state_of(p);
    s->line_done = true;
    if (s->in_value) {
      push_header(s);
    }
    s->field.append(at, len);
    return 0;
  };
  settings.on_header_value = [](http_parser* p, const char* at, std::size_t len) {
    State* s = state_of(p);
    s->in_value = true;
    s->value.append(at, len);
    return 0;
  };
  settings.on_headers_complete = [](http_parser* p) {
    State* s = state_of(p);
    push_header(s);
    s->line_done = true;
    s->head_done = true;
    if (p->http_major != 1) {
      s->reject_status = 505;
      return -1;
    }
    s->request.method = http_method_str(static_cast<http_method>(p->method));
    if (!s->split_target()) {
      s->reject_status = 400;
      return -1;
    }
    // Refuse a declared body that cannot fit before reading any of it.
    const bool chunked = (p->flags & F_CHUNKED) != 0;
    const bool has_length = p->content_length != ULLONG_MAX && p->content_length > 0;
    if (has_length && p->content_length > body_room(s)) {
      s->reject_status = 413;
      return -1;
    }
    const std::string expect = s->request.header("Expect");
    if (!expect.empty() && p->http_minor >= 1) {  // HTTP/1.0 ignores Expect (RFC 9110 §10.1.1)
      if (!iequals(expect, "100-continue")) {
        s->reject_status = 417;
        return -1;
      }
      if (chunked || has_length) {
        // The client waits for this before it sends the body.
        *s->out += "HTTP/1.1 100 Continue\r\n\r\n";
      }
    }
    return 0;
  };
  settings.on_chunk_header = [](http_parser* p) {
    State* s = state_of(p);
    // content_length holds this chunk's declared size: refuse it before reading it.
    if (p->content_length > body_room(s)) {
      s->reject_status = 413;
      return -1;
    }
    return 0;
  };
  settings.on_body = [](http_parser* p, const char* at, std::size_t len) {
    State* s = state_of(p);
    if (len > body_room(s)) {
      s->reject_status = 413;
      return -1;
    }
    s->request.body.append(at, len);
    return 0;
  };
  settings.on_message_complete = [](http_parser* p) {
    State* s = state_of(p);
    s->complete(http_should_keep_alive(p) != 0);
    if (s->done) {
      return -1;  // nothing after this request is read
    }
    if (p->upgrade != 0) {
      // The parser stops at an Upgrade or CONNECT request, taking what follows for another
      // protocol. We switched to none, so what follows is the next request.
      s->reinit = true;
    }
    if (s->out->size() > s->max_output) {
      http_parser_pause(p, 1);
    }
    return 0;
  };
  return settings;
}

const http_parser_settings HttpSession::State::settings = HttpSession::State::make_settings();

HttpSession::HttpSession(const HttpRoutes& routes, std::size_t max_request_bytes, HttpStats* stats)
    : state_(std::make_unique<State>(routes, max_request_bytes, stats)) {}

HttpSession::~HttpSession() = default;

void HttpSession::feed(std::string_view data, std::string& out, std::size_t max_output) {
  State& s = *state_;
  if (s.done) {
    return;
  }
  std::string input;
  if (!s.held.empty()) {
    input = std::move(s.held);
    s.held.clear();
    input.append(data);
    data = input;
  }
  s.out = &out;
  s.max_output = max_output;
  std::size_t pos = 0;
  while (pos < data.size() && !s.done) {
    if (out.size() > max_output) {
      s.held.assign(data.substr(pos));
      break;
    }
    if (s.reinit) {
      http_parser_init(&s.parser, HTTP_REQUEST);
      s.parser.data = &s;
      s.reinit = false;
    }
    // While a head is being read, the parser gets at most one byte past the limit
    // (nread counts head bytes, CRLFs before a request included): a head over the limit is
    // refused at the same byte however the input was split into reads.
    std::size_t len = data.size() - pos;
    const bool in_head = !s.in_request || !s.head_done;
    if (in_head) {
      const std::size_t read = s.in_request ? s.parser.nread : 0;
      const std::size_t room = s.max_request_bytes > read ? s.max_request_bytes - read : 0;
      len = std::min(len, room + 1);
    }
    const std::size_t used =
        http_parser_execute(&s.parser, &State::settings, data.data() + pos, len);
    pos += used;
    if (s.done) {
      break;
    }
    if (s.in_request && !s.head_done && s.parser.nread > s.max_request_bytes &&
        HTTP_PARSER_ERRNO(&s.parser) == HPE_OK) {
      s.refuse(s.line_done ? 431 : 414);
      break;
    }
    const auto err = HTTP_PARSER_ERRNO(&s.parser);
    if (err == HPE_PAUSED) {
      http_parser_pause(&s.parser, 0);
      continue;
    }
    if (s.reject_status != 0) {
      s.refuse(s.reject_status);
    } else if (err == HPE_HEADER_OVERFLOW) {
      s.refuse(431);
    } else if (err != HPE_OK || (used == 0 && !s.reinit && len != 0)) {
      s.refuse(400);  // the second case would be a parser that makes no progress
    }
  }
  s.out = nullptr;
}

bool HttpSession::blocked() const {
  return !state_->held.empty();
}

bool HttpSession::done() const {
  return state_->done;
}

std::uint64_t HttpSession::answered() const {
  return state_->answered;
}

bool HttpSession::in_request() const {
  return state_->in_request;
}

}  // namespace tierd
