#include "tier/dedup.hpp"

#include <openssl/evp.h>

#include "tier/keys.hpp"

namespace tier {

std::string normalize_code(std::string_view code) {
  std::string out;
  out.reserve(code.size());
  std::size_t line_start = 0;  // in `out`
  auto strip_line = [&] {
    while (out.size() > line_start) {
      char c = out.back();
      if (c == ' ' || c == '\t' || c == '\f' || c == '\v') {
        out.pop_back();
      } else {
        break;
      }
    }
  };
  for (std::size_t i = 0; i < code.size(); ++i) {
    char c = code[i];
    if (c == '\r' || c == '\n') {
      if (c == '\r' && i + 1 < code.size() && code[i + 1] == '\n') {
        ++i;
      }
      strip_line();
      out.push_back('\n');
      line_start = out.size();
    } else {
      out.push_back(c);
    }
  }
  strip_line();
  while (!out.empty() && out.back() == '\n') {
    out.pop_back();
  }
  return out;
}

std::string sha256_hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string out;
  out.reserve(2 * len);
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(hex[md[i] >> 4]);
    out.push_back(hex[md[i] & 15]);
  }
  return out;
}

TierKey Dedup::analysis_key(std::string_view project_id, std::string_view hash) const {
  return cache_.project(project_id, "analysis:" + std::string(hash));
}

Op<Unit> Dedup::cache_analysis_result(std::string_view code, const Json& result,
                                      std::string_view project_id, std::chrono::seconds ttl) const {
  return cache_.set(analysis_key(project_id, code_hash(code)), result, ttl);
}

Op<std::optional<Json>> Dedup::get_cached_analysis(std::string_view code,
                                                   std::string_view project_id) const {
  return cache_.get(analysis_key(project_id, code_hash(code)));
}

TierKey Dedup::model_key(std::string_view model, std::string_view version,
                         std::string_view prompt) const {
  TierKey k =
      cache_.global("model", model, std::string(version) + ":" + sha256_hex(prompt) + ":response");
  if (!k.invalid) {
    k.invalid = check_id(model, "model");
  }
  if (!k.invalid) {
    k.invalid = check_id(version, "version");
  }
  return k;
}

Op<Unit> Dedup::cache_model_response(std::string_view model, std::string_view version,
                                     std::string_view prompt, const Json& response,
                                     std::chrono::seconds ttl) const {
  return cache_.set(model_key(model, version, prompt), response, ttl);
}

Op<std::optional<Json>> Dedup::get_model_response(std::string_view model, std::string_view version,
                                                  std::string_view prompt) const {
  return cache_.get(model_key(model, version, prompt));
}

TierKey Providers::health_key(std::string_view provider) const {
  return cache_.global("provider", provider, "health_status");
}

TierKey Providers::rate_limit_key(std::string_view provider) const {
  return cache_.global("provider", provider, "rate_limit_status");
}

Op<Unit> Providers::put(const TierKey& k, const Json& v,
                        std::optional<std::chrono::seconds> ttl) const {
  if (k.invalid) {
    return Op<Unit>::fail(*k.invalid);
  }
  if (ttl) {
    return cache_.set(k, v, ttl);
  }
  auto text = cache_.encode(v, k.key);
  if (!text.ok()) {
    return Op<Unit>::fail(text.error());
  }
  return single<Unit>(Command::of({"SET", k.key, std::move(text).value()}),
                      [key = k.key](Reply&& r) { return decode_ok(std::move(r), "SET " + key); });
}

Op<Unit> Providers::set_health(std::string_view provider, const Json& status,
                               std::optional<std::chrono::seconds> ttl) const {
  return put(health_key(provider), status, ttl);
}

Op<std::optional<Json>> Providers::health(std::string_view provider) const {
  return cache_.get(health_key(provider));
}

Op<Unit> Providers::set_rate_limit_status(std::string_view provider, const Json& status,
                                          std::optional<std::chrono::seconds> ttl) const {
  return put(rate_limit_key(provider), status, ttl);
}

Op<std::optional<Json>> Providers::rate_limit_status(std::string_view provider) const {
  return cache_.get(rate_limit_key(provider));
}

}  // namespace tier
