// The reply functions of command connections (core/tier/uv/reply_tree): RESP through a real
// hiredis reader straight into tier::Reply, equal to hiredis's own tree copied; replies cut
// at every byte; and what a hostile server can send: a huge declared array, negative
// counts, protocol errors in the middle of an array (ASan checks that nothing leaks).
#include <hiredis/hiredis.h>
#include <hiredis/read.h>

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "tier/reply.hpp"
#include "tier/resp/reply_tree.hpp"

namespace {

std::string bulk(const std::string& s) {
  return "$" + std::to_string(s.size()) + "\r\n" + s + "\r\n";
}

struct Reader {
  explicit Reader(bool tree) : r(redisReaderCreate()), tree(tree) {
    if (tree) {
      r->fn = tier::detail::reply_tree_functions();
    }
  }
  ~Reader() { redisReaderFree(r); }
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  // Feeds `bytes` `step` at a time; the reply once complete (nothing before).
  tier::Reply read(const std::string& bytes, std::size_t step = 1 << 20) {
    void* out = nullptr;
    for (std::size_t i = 0; i < bytes.size(); i += step) {
      REQUIRE(out == nullptr);
      const std::size_t n = std::min(step, bytes.size() - i);
      REQUIRE(redisReaderFeed(r, bytes.data() + i, n) == REDIS_OK);
      REQUIRE(redisReaderGetReply(r, &out) == REDIS_OK);
    }
    if (bytes.empty()) {  // a reply fed earlier, behind another
      REQUIRE(redisReaderGetReply(r, &out) == REDIS_OK);
    }
    REQUIRE(out != nullptr);
    tier::Reply value = tree ? std::move(tier::detail::reply_tree_value(out))
                             : tier::Reply::from_hiredis(static_cast<redisReply*>(out));
    r->fn->freeObject(out);
    return value;
  }
  redisReader* r;
  bool tree;
};

// A stream read of n entries, as XREADGROUP answers it.
std::string stream_read(int n) {
  std::string out = "*1\r\n*2\r\n" + bulk("writebehind:t") + "*" + std::to_string(n) + "\r\n";
  for (int i = 0; i < n; ++i) {
    out += "*2\r\n" + bulk("1764412345678-" + std::to_string(i)) + "*6\r\n" + bulk("op") +
           bulk("upsert") + bulk("version") + bulk(std::to_string(i)) + bulk("row") +
           bulk(R"({"id":")" + std::to_string(i) + R"(","v":"x"})");
  }
  return out;
}

}  // namespace

TEST_CASE("reply tree: every reply type equals hiredis's own, whole or cut at every byte") {
  const std::vector<std::string> inputs{
      "+OK\r\n",
      "-ERR wrong type\r\n",
      ":-42\r\n",
      "$-1\r\n",
      "*-1\r\n",
      "*0\r\n",
      bulk(""),
      bulk(std::string(100000, 'v')),
      bulk(std::string("nul\0inside\r\n", 12)),
      "*6\r\n:42\r\n$-1\r\n+OK\r\n-ERR bad\r\n*0\r\n*2\r\n$1\r\nx\r\n*-1\r\n",
      "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:7\r\n",  // as deep as hiredis reads
      "*3\r\n*2\r\n:1\r\n:2\r\n*0\r\n*2\r\n$1\r\na\r\n*1\r\n$1\r\nb\r\n",
      stream_read(5000),
  };
  for (const auto& in : inputs) {
    INFO(in.substr(0, 80));
    Reader plain(false);
    Reader tree(true);
    const tier::Reply want = plain.read(in);
    CHECK(tree.read(in) == want);
    if (in.size() < 2000) {
      Reader bytewise(true);
      CHECK(bytewise.read(in, 1) == want);
    }
  }
  // One reader, many replies in a row (the connection's life).
  Reader tree(true);
  for (int i = 0; i < 100; ++i) {
    auto r = tree.read(stream_read(3) + "+OK\r\n");
    REQUIRE(r.is_array());
    CHECK(r.elements[0].elements[1].elements[2].elements[1].elements[5].str ==
          R"({"id":"2","v":"x"})");
    CHECK(tree.read("").str == "OK");
  }
}

TEST_CASE("reply tree: the root reads as a redisReply where hiredis looks at it") {
  // hiredis reads type and str of a reply no command waits for (a connection refused with
  // "-ERR max number of clients reached"): the root's header carries them.
  Reader reader(true);
  REQUIRE(redisReaderFeed(reader.r, "-ERR max clients\r\n", 18) == REDIS_OK);
  void* out = nullptr;
  REQUIRE(redisReaderGetReply(reader.r, &out) == REDIS_OK);
  REQUIRE(out != nullptr);
  auto* header = static_cast<redisReply*>(out);
  CHECK(header->type == REDIS_REPLY_ERROR);
  CHECK(std::string(header->str, header->len) == "ERR max clients");
  CHECK(header->str[header->len] == '\0');
  reader.r->fn->freeObject(out);
}

TEST_CASE("reply tree: hostile replies end the connection with an error, never a crash") {
  SECTION("a huge declared array costs only what arrives") {
    Reader reader(true);
    std::string in = "*2000000000\r\n";
    for (int i = 0; i < 1000; ++i) {
      in += bulk("e");
    }
    REQUIRE(redisReaderFeed(reader.r, in.data(), in.size()) == REDIS_OK);
    void* out = nullptr;
    REQUIRE(redisReaderGetReply(reader.r, &out) == REDIS_OK);
    CHECK(out == nullptr);  // incomplete; the reader frees the partial reply with itself
  }
  SECTION("a negative count other than -1 is refused") {
    Reader reader(true);
    REQUIRE(redisReaderFeed(reader.r, "*-5\r\n", 5) == REDIS_OK);
    void* out = nullptr;
    CHECK(redisReaderGetReply(reader.r, &out) == REDIS_ERR);
    CHECK(out == nullptr);
  }
  SECTION("a protocol error in the middle of a nested array frees what was built") {
    Reader reader(true);
    const std::string in = "*3\r\n:1\r\n*2\r\n$3\r\nabc\r\n!garbage\r\n";
    REQUIRE(redisReaderFeed(reader.r, in.data(), in.size()) == REDIS_OK);
    void* out = nullptr;
    CHECK(redisReaderGetReply(reader.r, &out) == REDIS_ERR);
    CHECK(out == nullptr);
    CHECK(std::string(reader.r->errstr).find("Protocol error") != std::string::npos);
  }
}
