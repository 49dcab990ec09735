#include <catch2/catch.hpp>

#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "tier/dedup.hpp"

TEST_CASE("code_hash matches the published vectors", "[dedup][unit]") {
  std::ifstream in(std::string(TIERD_SOURCE_DIR) + "/tests/vectors/code_hash.json");
  REQUIRE(in.good());
  auto doc = nlohmann::json::parse(in);
  REQUIRE(doc["vectors"].size() >= 10);
  for (const auto& v : doc["vectors"]) {
    std::string input = v["input"];
    INFO("input: " << nlohmann::json(input).dump());
    CHECK(tier::normalize_code(input) == v["normalized"].get<std::string>());
    CHECK(tier::code_hash(input) == v["sha256"].get<std::string>());
  }
}

TEST_CASE("sha256_hex is the standard digest", "[dedup][unit]") {
  CHECK(tier::sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(tier::sha256_hex("abc") ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

namespace {

// The rules of docs/contracts.md#code_hash, written plainly: the reference the fast path
// (64-byte blocks of line-end bits, pieces hashed in place) must agree with.
std::string reference_normalize(const std::string& code) {
  std::string lf;
  for (std::size_t i = 0; i < code.size(); ++i) {
    if (code[i] == '\r') {
      lf += '\n';
      if (i + 1 < code.size() && code[i + 1] == '\n') {
        ++i;
      }
    } else {
      lf += code[i];
    }
  }
  std::vector<std::string> lines(1);
  for (char c : lf) {
    if (c == '\n') {
      lines.emplace_back();
    } else {
      lines.back() += c;
    }
  }
  for (auto& l : lines) {
    while (!l.empty() &&
           (l.back() == ' ' || l.back() == '\t' || l.back() == '\f' || l.back() == '\v')) {
      l.pop_back();
    }
  }
  while (!lines.empty() && lines.back().empty()) {
    lines.pop_back();
  }
  std::string out;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    out += (i == 0 ? "" : "\n") + lines[i];
  }
  return out;
}

}  // namespace

TEST_CASE("code_hash agrees with the plain rules on random text, across block boundaries",
          "[dedup][unit]") {
  std::mt19937 rng(11);
  static const char alphabet[] = {'a', 'b', ' ', '\t', '\r', '\n', '\f', '\v', 'x', '\r', '\n'};
  for (int round = 0; round < 20000; ++round) {
    std::string code(rng() % 300, 'a');
    for (auto& c : code) {
      c = alphabet[rng() % sizeof alphabet];
    }
    INFO(nlohmann::json(code).dump());
    const std::string want = reference_normalize(code);
    REQUIRE(tier::normalize_code(code) == want);
    REQUIRE(tier::code_hash(code) == tier::sha256_hex(want));
  }
  // A CRLF split by the 64-byte block boundary, and lines longer than a block.
  for (std::size_t at = 60; at < 70; ++at) {
    std::string code(at, 'y');
    code += "  \r\n" + std::string(130, 'z') + " \r\r\n\n";
    REQUIRE(tier::normalize_code(code) == reference_normalize(code));
  }
}
