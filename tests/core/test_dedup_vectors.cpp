#include <catch2/catch.hpp>

#include <fstream>
#include <nlohmann/json.hpp>

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
