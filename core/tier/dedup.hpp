#pragma once
// Semantic dedup by code hash, the model-response cache and provider status keys
// (DESIGN §4). code_hash is the lowercase hex SHA-256 of the normalised code:
//   1. CRLF and lone CR become LF;
//   2. trailing spaces, tabs, form feeds and vertical tabs are stripped from each line;
//   3. trailing empty lines are dropped, and the result has no final newline.
// tests/vectors/code_hash.json holds vectors other languages can check against.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "tier/cache.hpp"

namespace tier {

std::string normalize_code(std::string_view code);
std::string sha256_hex(std::string_view data);
/// sha256_hex(normalize_code(code)), computed without building the normalised copy.
std::string code_hash(std::string_view code);

class Dedup {
 public:
  /// Default TTL of analysis results and model responses.
  static constexpr std::chrono::seconds kAnalysisTtl{3600};
  static constexpr std::chrono::seconds kModelTtl{86400};

  explicit Dedup(const Cache& cache) : cache_(cache) {}

  /// project:{project_id}:analysis:{code_hash}
  TierKey analysis_key(std::string_view project_id, std::string_view hash) const;
  Op<Unit> cache_analysis_result(std::string_view code, const Json& result,
                                 std::string_view project_id,
                                 std::chrono::seconds ttl = kAnalysisTtl) const;
  Op<std::optional<Json>> get_cached_analysis(std::string_view code,
                                              std::string_view project_id) const;

  /// model:{model}:{version}:{sha256(prompt)}:response
  TierKey model_key(std::string_view model, std::string_view version,
                    std::string_view prompt) const;
  Op<Unit> cache_model_response(std::string_view model, std::string_view version,
                                std::string_view prompt, const Json& response,
                                std::chrono::seconds ttl = kModelTtl) const;
  Op<std::optional<Json>> get_model_response(std::string_view model, std::string_view version,
                                             std::string_view prompt) const;

 private:
  const Cache& cache_;
};

/// provider:{name}:health_status and provider:{name}:rate_limit_status.
class Providers {
 public:
  explicit Providers(const Cache& cache) : cache_(cache) {}
  TierKey health_key(std::string_view provider) const;
  TierKey rate_limit_key(std::string_view provider) const;
  /// ttl nullopt = no expiry.
  Op<Unit> set_health(std::string_view provider, const Json& status,
                      std::optional<std::chrono::seconds> ttl = std::nullopt) const;
  Op<std::optional<Json>> health(std::string_view provider) const;
  Op<Unit> set_rate_limit_status(std::string_view provider, const Json& status,
                                 std::optional<std::chrono::seconds> ttl = std::nullopt) const;
  Op<std::optional<Json>> rate_limit_status(std::string_view provider) const;

 private:
  Op<Unit> put(const TierKey& k, const Json& v, std::optional<std::chrono::seconds> ttl) const;
  const Cache& cache_;
};

}  // namespace tier
