// Dedup hashing throughput: tier::code_hash (normalise + SHA-256) against raw OpenSSL
// SHA-256 (EVP) of the same bytes, on ~64 MiB of generated source code that looks like
// what apps send: indented lines, comments, some trailing whitespace and CRLF files.
//
//   core_hash_bench [MIB]
// prints:  RESULT hash mib=<n> code_hash_mbps=<x> evp_sha256_mbps=<y> ratio=<x/y>

#include <openssl/evp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

#include "tier/dedup.hpp"

namespace {

std::string make_corpus(std::size_t bytes) {
  static const char* lines[] = {
      "def handle_{n}(request, session_id):",
      "    \"\"\"Return the cached analysis for request {n}.\"\"\"",
      "    key = f\"project:{{project_id}}:analysis:{{code_hash}}\"",
      "    value = cache.get(key)  ",
      "    if value is None:",
      "        value = analyse(request.body, depth={n})\t",
      "        cache.set(key, value, ttl=3600)",
      "    return value",
      "",
      "static int parse_{n}(const char* p, size_t n) {",
      "  for (size_t i = 0; i < n; ++i) {   ",
      "    if (p[i] == '\\n') { return (int)i; }",
      "  }",
      "  return -1;  // not found",
      "}",
      "",
      "// {n}: keep the loop tight; the compiler vectorises it",
      "export function render{n}(props: Props): JSX.Element {",
      "  const [state, setState] = useState<number>({n});",
      "  return <div className=\"row\">{{state}}</div>;",
      "}",
      "",
  };
  std::mt19937 rng(42);
  std::string out;
  out.reserve(bytes + 256);
  std::size_t count = sizeof lines / sizeof lines[0];
  std::size_t file_lines = 0;
  bool crlf = false;
  while (out.size() < bytes) {
    std::string line = lines[rng() % count];
    for (std::size_t at; (at = line.find("{n}")) != std::string::npos;) {
      line.replace(at, 3, std::to_string(rng() % 100000));
    }
    for (std::size_t at; (at = line.find("{{")) != std::string::npos;) {
      line.replace(at, 2, "{");
    }
    for (std::size_t at; (at = line.find("}}")) != std::string::npos;) {
      line.replace(at, 2, "}");
    }
    out += line;
    out += crlf ? "\r\n" : "\n";
    // A new "file" every ~400 lines; one in four uses Windows line ends.
    if (++file_lines == 400) {
      file_lines = 0;
      crlf = rng() % 4 == 0;
    }
  }
  return out;
}

// The normalisation as DESIGN §4 states it, written the obvious way: the optimised
// tier::code_hash must agree with it, or the figures mean nothing.
std::string reference_normalize(std::string_view code) {
  std::string out;
  std::size_t line_start = 0;
  auto strip = [&] {
    while (out.size() > line_start &&
           (out.back() == ' ' || out.back() == '\t' || out.back() == '\f' || out.back() == '\v')) {
      out.pop_back();
    }
  };
  for (std::size_t i = 0; i < code.size(); ++i) {
    char c = code[i];
    if (c == '\r' || c == '\n') {
      if (c == '\r' && i + 1 < code.size() && code[i + 1] == '\n') {
        ++i;
      }
      strip();
      out.push_back('\n');
      line_start = out.size();
    } else {
      out.push_back(c);
    }
  }
  strip();
  while (!out.empty() && out.back() == '\n') {
    out.pop_back();
  }
  return out;
}

bool agrees(const std::string& code) {
  return tier::code_hash(code) == tier::sha256_hex(reference_normalize(code)) &&
         tier::normalize_code(code) == reference_normalize(code);
}

// Short random strings over the characters that matter to normalisation.
bool fuzz_agrees() {
  const char alphabet[] = {'a', ' ', '\t', '\r', '\n', '\f', '\v', 'b'};
  std::mt19937 rng(7);
  for (int n = 0; n < 200000; ++n) {
    std::string s(rng() % 24, 'a');
    for (auto& c : s) {
      c = alphabet[rng() % sizeof alphabet];
    }
    if (!agrees(s)) {
      return false;
    }
  }
  return true;
}

template <class F>
double best_mbps(const std::string& data, F&& f) {
  double best = 0;
  for (int i = 0; i < 3; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, static_cast<double>(data.size()) / (1024.0 * 1024.0) / s);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t mib = argc > 1 ? static_cast<std::size_t>(std::atol(argv[1])) : 64;
  std::string code = make_corpus(mib << 20);
  if (!agrees(code) || !fuzz_agrees()) {
    std::fprintf(stderr, "tier::code_hash disagrees with the reference normalisation\n");
    return 1;
  }

  std::string h1;
  double ours = best_mbps(code, [&] { h1 = tier::code_hash(code); });
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  double evp = best_mbps(
      code, [&] { EVP_Digest(code.data(), code.size(), md, &len, EVP_sha256(), nullptr); });
  if (h1.size() != 64) {
    return 1;
  }
  std::printf("RESULT hash mib=%zu code_hash_mbps=%.0f evp_sha256_mbps=%.0f ratio=%.2f\n", mib,
              ours, evp, ours / evp);
  return 0;
}
