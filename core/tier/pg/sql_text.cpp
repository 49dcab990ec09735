#include "tier/pg/sql_text.hpp"

#include "tier/errors.hpp"

namespace tier {

std::string pg_quote_ident(std::string_view name) {
  if (name.empty() || name.size() > 63 || name.find('\0') != std::string_view::npos) {
    throw InvalidArgument("invalid SQL identifier \"" + std::string(name.substr(0, 80)) +
                          "\": must be 1 to 63 bytes without NUL");
  }
  std::string out = "\"";
  for (char ch : name) {
    if (ch == '"') {
      out += '"';
    }
    out += ch;
  }
  out += '"';
  return out;
}

std::string pg_quote_literal(std::string_view value) {
  if (value.find('\0') != std::string_view::npos) {
    throw InvalidArgument("a SQL literal cannot hold a NUL byte");
  }
  std::string out = "E'";
  out.reserve(value.size() + 4);
  for (char c : value) {
    if (c == '\'' || c == '\\') {
      out += c;
    }
    out += c;
  }
  out += '\'';
  return out;
}

void pg_copy_escape(std::string& out, const std::optional<std::string>& value) {
  if (!value) {
    out += "\\N";
    return;
  }
  // Copies runs of ordinary bytes at once; only the four special bytes are rewritten.
  const std::string& v = *value;
  std::size_t run = 0;
  for (std::size_t i = 0; i < v.size(); ++i) {
    const char* rep = nullptr;
    switch (v[i]) {
      case '\\':
        rep = "\\\\";
        break;
      case '\t':
        rep = "\\t";
        break;
      case '\n':
        rep = "\\n";
        break;
      case '\r':
        rep = "\\r";
        break;
      default:
        continue;
    }
    out.append(v, run, i - run);
    out += rep;
    run = i + 1;
  }
  out.append(v, run, std::string::npos);
}

}  // namespace tier
