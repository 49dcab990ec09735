#include "tier/pg/conninfo.hpp"

#include <libpq-fe.h>

#include <algorithm>
#include <cctype>
#include <string_view>

#include "tier/errors.hpp"

namespace tier {

namespace {

std::string message_without_secrets(std::string what, const std::string& conninfo) {
  std::string lower = conninfo;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  const bool may_hold_password =
      lower.find("pass") != std::string::npos || conninfo.find_first_of("@%") != std::string::npos;
  const auto first = what.find('"');
  const auto last = what.rfind('"');
  if (may_hold_password && first != std::string::npos) {
    what = what.substr(0, first) + "\"...\"" + (last > first ? what.substr(last + 1) : "") +
           " (the quoted part is not shown: it may hold the password)";
  }
  return what;
}

}  // namespace

ConninfoParts parse_conninfo(const std::string& conninfo) {
  if (conninfo.find('\0') != std::string::npos) {
    throw InvalidArgument("invalid PostgreSQL conninfo: it contains a NUL byte");
  }
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
  if (opts == nullptr) {
    std::string what = err != nullptr ? err : "out of memory";
    PQfreemem(err);
    while (!what.empty() && (what.back() == '\n' || what.back() == ' ')) {
      what.pop_back();
    }
    throw InvalidArgument("invalid PostgreSQL conninfo: " +
                          message_without_secrets(what, conninfo));
  }
  ConninfoParts parts;
  for (PQconninfoOption* o = opts; o->keyword != nullptr; ++o) {
    if (o->val == nullptr) {
      continue;
    }
    const std::string_view k = o->keyword;
    if (k == "password" && o->val[0] != '\0') {
      parts.has_password = true;
    } else if (k == "host") {
      parts.host = o->val;
    } else if (k == "hostaddr") {
      parts.hostaddr = o->val;
    }
  }
  PQconninfoFree(opts);
  return parts;
}

}  // namespace tier
