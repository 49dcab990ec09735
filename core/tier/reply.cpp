#include "tier/reply.hpp"

#include <algorithm>

#include "tier/op.hpp"

namespace tier {

const char* Reply::type_name() const noexcept {
  switch (type) {
    case Type::nil:
      return "nil";
    case Type::string:
      return "string";
    case Type::status:
      return "status";
    case Type::error:
      return "error";
    case Type::integer:
      return "integer";
    case Type::array:
      return "array";
  }
  return "unknown";
}

Command Command::eval(const Script& s, const std::vector<std::string>& keys,
                      const std::vector<std::string>& argv) {
  Command c;
  c.script = &s;
  c.args.reserve(1 + keys.size() + argv.size());
  c.args.push_back(std::to_string(keys.size()));
  c.args.insert(c.args.end(), keys.begin(), keys.end());
  c.args.insert(c.args.end(), argv.begin(), argv.end());
  return c;
}

Error reply_error(const Reply& r, std::string_view what) {
  if (r.is_error()) {
    // Redis errors start with a code word ("NOGROUP No such key ..."), kept for callers.
    std::string code = r.str.substr(0, r.str.find(' '));
    const bool is_code = !code.empty() && std::all_of(code.begin(), code.end(), [](char c) {
      return (c >= 'A' && c <= 'Z') || c == '_';
    });
    return Error{ErrorKind::reply, std::string(what) + ": " + r.str, is_code ? code : ""};
  }
  return Error{ErrorKind::protocol, std::string(what) + ": unexpected " + r.type_name() + " reply"};
}

Result<Unit> decode_ok(Reply&& r, std::string_view what) {
  if (r.type == Reply::Type::status) {
    return Unit{};
  }
  return reply_error(r, what);
}

Result<long long> decode_integer(Reply&& r, std::string_view what) {
  if (r.is_integer()) {
    return r.integer;
  }
  return reply_error(r, what);
}

Result<std::optional<std::string>> decode_optional_string(Reply&& r, std::string_view what) {
  if (r.is_nil()) {
    return std::optional<std::string>{};
  }
  if (r.is_string() || r.type == Reply::Type::status) {
    return std::optional<std::string>{std::move(r.str)};
  }
  return reply_error(r, what);
}

Result<std::string> decode_string(Reply&& r, std::string_view what) {
  if (r.is_string() || r.type == Reply::Type::status) {
    return std::move(r.str);
  }
  return reply_error(r, what);
}

std::vector<Command> hello_commands(const RedisEndpoint& ep, const std::string& client_name) {
  std::vector<Command> hello;
  if (!ep.password.empty()) {
    hello.push_back(ep.user.empty() ? Command::of({"AUTH", ep.password})
                                    : Command::of({"AUTH", ep.user, ep.password}));
  }
  if (ep.db != 0) {
    hello.push_back(Command::of({"SELECT", std::to_string(ep.db)}));
  }
  if (!client_name.empty()) {
    hello.push_back(Command::of({"CLIENT", "SETNAME", client_name}));
  }
  return hello;
}

Op<Reply> raw(std::vector<std::string> args) {
  if (args.empty()) {
    return Op<Reply>::fail(Error{ErrorKind::invalid, "command: no arguments"});
  }
  return single<Reply>(Command::of(std::move(args)),
                       [](Reply&& r) -> Result<Reply> { return std::move(r); });
}

}  // namespace tier
