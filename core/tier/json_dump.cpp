#include "tier/json_dump.hpp"

#include <charconv>

#include "tier/json_check.hpp"

namespace tier::json {

namespace {

bool plain(unsigned char c) {
  return c >= 0x20 && c != '"' && c != '\\';
}

void escape(std::string_view s, std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  std::size_t run = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (plain(c)) {
      continue;
    }
    out.append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default: {
        const char u[] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
        out.append(u, sizeof u);
      }
    }
  }
  out.append(s.data() + run, s.size() - run);
  out += '"';
}

// False when a string is not UTF-8: the caller lets nlohmann write (and throw) instead.
bool write(const nlohmann::json& v, std::string& out) {
  using T = nlohmann::json::value_t;
  switch (v.type()) {
    case T::null:
      out += "null";
      return true;
    case T::boolean:
      out += v.get_ref<const bool&>() ? "true" : "false";
      return true;
    case T::number_integer:
    case T::number_unsigned: {
      char buf[24];
      auto r = v.type() == T::number_integer
                   ? std::to_chars(buf, buf + sizeof buf, v.get_ref<const std::int64_t&>())
                   : std::to_chars(buf, buf + sizeof buf, v.get_ref<const std::uint64_t&>());
      out.append(buf, r.ptr);
      return true;
    }
    case T::string: {
      const auto& s = v.get_ref<const std::string&>();
      if (!valid_utf8(s)) {
        return false;
      }
      escape(s, out);
      return true;
    }
    case T::array: {
      out += '[';
      bool first = true;
      for (const auto& e : v) {
        if (!first) {
          out += ',';
        }
        first = false;
        if (!write(e, out)) {
          return false;
        }
      }
      out += ']';
      return true;
    }
    case T::object: {
      out += '{';
      bool first = true;
      for (const auto& [k, e] : v.items()) {
        if (!first) {
          out += ',';
        }
        first = false;
        if (!valid_utf8(k)) {
          return false;
        }
        escape(k, out);
        out += ':';
        if (!write(e, out)) {
          return false;
        }
      }
      out += '}';
      return true;
    }
    default:  // floats (nlohmann's own shortest form), binary, discarded
      out += v.dump();
      return true;
  }
}

}  // namespace

void dump(const nlohmann::json& value, std::string& out) {
  const std::size_t start = out.size();
  if (!write(value, out)) {
    out.resize(start);
    out += value.dump();  // throws the error nlohmann gives for the bad string
  }
}

std::string dump(const nlohmann::json& value) {
  std::string out;
  dump(value, out);
  return out;
}

}  // namespace tier::json
