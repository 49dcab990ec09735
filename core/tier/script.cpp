#include "tier/script.hpp"

#include "tier/keys.hpp"

#include <openssl/sha.h>

#include <stdexcept>

namespace tier {
namespace detail {
const std::vector<std::pair<std::string_view, std::string_view>>& embedded_lua();
}

namespace {

std::string sha1_hex(std::string_view s) {
  unsigned char md[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(s.data()), s.size(), md);
  return to_hex(md, SHA_DIGEST_LENGTH);
}

}  // namespace

const std::vector<Script>& all_scripts() {
  static const std::vector<Script> scripts = [] {
    std::vector<Script> v;
    for (const auto& [name, source] : detail::embedded_lua()) {
      v.push_back(Script{std::string(name), std::string(source), sha1_hex(source)});
    }
    return v;
  }();
  return scripts;
}

const Script& script(std::string_view name) {
  for (const auto& s : all_scripts()) {
    if (s.name == name) {
      return s;
    }
  }
  throw std::out_of_range("no embedded Lua script named '" + std::string(name) + "'");
}

}  // namespace tier
