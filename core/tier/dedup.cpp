#include "tier/dedup.hpp"

#include <openssl/evp.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "tier/keys.hpp"

namespace tier {

namespace {

bool is_blank(char c) {
  return c == ' ' || c == '\t' || c == '\f' || c == '\v';
}

// Bit k set when p[k] is LF or CR, for the 64 bytes at p. The line ends of a block are found
// once and walked with ctz, so a short line costs a few bit operations rather than a new
// scan.
[[gnu::always_inline]] inline std::uint64_t line_end_mask64(const char* p) {
#if defined(__SSE2__)
  const __m128i lf = _mm_set1_epi8('\n');
  const __m128i cr = _mm_set1_epi8('\r');
  std::uint64_t mask = 0;
  for (int k = 0; k < 4; ++k) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * k));
    const auto bits = static_cast<std::uint32_t>(
        _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, lf), _mm_cmpeq_epi8(v, cr))));
    mask |= static_cast<std::uint64_t>(bits & 0xFFFF) << (16 * k);
  }
  return mask;
#else
  std::uint64_t mask = 0;
  for (int k = 0; k < 64; ++k) {
    if (p[k] == '\n' || p[k] == '\r') {
      mask |= std::uint64_t{1} << k;
    }
  }
  return mask;
#endif
}

// The same for the n < 64 bytes at p (the input's last block), never reading past them.
std::uint64_t line_end_mask_tail(const char* p, std::size_t n) {
  char tail[64] = {};
  std::memcpy(tail, p, n);
  return line_end_mask64(tail);
}

// Calls emit(data, size) with consecutive pieces whose concatenation is the normalised code.
// The normalised text is the input with a few bytes removed (trailing blanks, the CR of
// CRLF) or replaced (lone CR), so unchanged stretches are passed on as they are, without a
// copy; code_hash then hashes the input in place.
template <class Emit>
void normalize_pieces(std::string_view code, Emit&& emit) {
  const char* p = code.data();
  // Trailing blanks, line ends and blank lines all go: cut them first, so the loop below
  // never has to look ahead for "only blank lines follow".
  std::size_t end = code.size();
  while (end > 0 && (is_blank(p[end - 1]) || p[end - 1] == '\n' || p[end - 1] == '\r')) {
    --end;
  }
  auto piece = [&](std::size_t from, std::size_t to) {
    if (to > from) {
      emit(p + from, to - from);
    }
  };
  std::size_t run = 0;  // first input byte not emitted yet
  std::size_t i = 0;    // start of the current line
  for (std::size_t block = 0; block < end; block += 64) {
    std::uint64_t ends =
        end - block >= 64 ? line_end_mask64(p + block) : line_end_mask_tail(p + block, end - block);
    for (; ends != 0; ends &= ends - 1) {
      const std::size_t t = block + static_cast<std::size_t>(__builtin_ctzll(ends));
      if (t < i) {
        continue;  // the LF of a CRLF handled with its CR
      }
      std::size_t text_end = t;  // this line's text ends here, minus trailing blanks
      while (text_end > i && is_blank(p[text_end - 1])) {
        --text_end;
      }
      if (text_end != t) {
        piece(run, text_end);
        run = t;
      }
      if (p[t] == '\r') {
        piece(run, t);
        if (t + 1 < end && p[t + 1] == '\n') {
          run = t + 1;  // CRLF: drop the CR, the LF stays in the run
          i = t + 2;
        } else {
          emit("\n", 1);  // lone CR
          run = t + 1;
          i = t + 1;
        }
      } else {
        i = t + 1;
      }
    }
  }
  // The last line has no line end before `end`: its trailing blanks were cut above.
  piece(run, end);
}

// Feeds pieces to SHA-256, gathering small ones so the digest sees few, large updates.
class Sha256Sink {
 public:
  Sha256Sink() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }
  ~Sha256Sink() { EVP_MD_CTX_free(ctx_); }
  Sha256Sink(const Sha256Sink&) = delete;
  Sha256Sink& operator=(const Sha256Sink&) = delete;

  void operator()(const char* data, std::size_t n) {
    if (n >= kDirect || n > sizeof buf_ - used_) {
      flush();  // keeps the bytes in order
    }
    if (n >= kDirect) {
      EVP_DigestUpdate(ctx_, data, n);
      return;
    }
    std::memcpy(buf_ + used_, data, n);
    used_ += n;
  }

  std::string hex() {
    flush();
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_, md, &len);
    return to_hex(md, len);
  }

 private:
  void flush() {
    if (used_ > 0) {
      EVP_DigestUpdate(ctx_, buf_, used_);
      used_ = 0;
    }
  }

  static constexpr std::size_t kDirect = 512;  // pieces this large skip the copy
  EVP_MD_CTX* ctx_;
  char buf_[16384];
  std::size_t used_ = 0;
};

}  // namespace

std::string normalize_code(std::string_view code) {
  std::string out;
  out.reserve(code.size());
  normalize_pieces(code, [&](const char* data, std::size_t n) { out.append(data, n); });
  return out;
}

std::string code_hash(std::string_view code) {
  Sha256Sink sink;
  normalize_pieces(code, sink);
  return sink.hex();
}

std::string sha256_hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return to_hex(md, len);
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
