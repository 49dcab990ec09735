// The recycling hiredis reply functions the subscriber reads with (core/tier/reply_pool):
// real RESP through a real hiredis reader, replies equal to what the default functions
// build, objects reused, big ones returned to malloc, and objects crossing between the
// default functions and these.
#include <hiredis/hiredis.h>
#include <hiredis/read.h>

#include <catch2/catch.hpp>

#include <string>

#include "tier/uv/reply_pool.hpp"

namespace {

std::string bulk(const std::string& s) {
  return "$" + std::to_string(s.size()) + "\r\n" + s + "\r\n";
}

std::string pmessage(const std::string& payload) {
  return "*4\r\n" + bulk("pmessage") + bulk("events:*") + bulk("events:a") + bulk(payload);
}

struct Reader {
  explicit Reader(bool pooled) : r(redisReaderCreate()) {
    if (pooled) {
      r->fn = tier::detail::pooled_reply_functions();
    }
  }
  ~Reader() { redisReaderFree(r); }
  redisReply* read(const std::string& bytes) {
    REQUIRE(redisReaderFeed(r, bytes.data(), bytes.size()) == REDIS_OK);
    void* out = nullptr;
    REQUIRE(redisReaderGetReply(r, &out) == REDIS_OK);
    REQUIRE(out != nullptr);
    return static_cast<redisReply*>(out);
  }
  redisReader* r;
};

std::string str(const redisReply* e) {
  return std::string(e->str, e->len);
}

}  // namespace

TEST_CASE("pooled replies carry what hiredis's own would, and are reused") {
  Reader reader(true);
  auto* fn = tier::detail::pooled_reply_functions();
  redisReply* first = reader.read(pmessage(R"({"a":1})"));
  REQUIRE(first->type == REDIS_REPLY_ARRAY);
  REQUIRE(first->elements == 4);
  CHECK(str(first->element[0]) == "pmessage");
  CHECK(str(first->element[2]) == "events:a");
  CHECK(str(first->element[3]) == R"({"a":1})");
  CHECK(first->element[3]->str[first->element[3]->len] == '\0');
  fn->freeObject(first);
  const auto kept = tier::detail::reply_pool_size();
  CHECK(kept.replies >= 5);
  CHECK(kept.strings >= 4);
  CHECK(kept.arrays >= 1);

  // The next message is built from the freed objects: nothing new is kept or allocated.
  redisReply* second = reader.read(pmessage(std::string(200, 'x')));
  CHECK(tier::detail::reply_pool_size().replies == kept.replies - 5);
  CHECK(str(second->element[3]) == std::string(200, 'x'));
  fn->freeObject(second);
  CHECK(tier::detail::reply_pool_size().replies == kept.replies);

  // Every reply type, nested, including nils and an empty array.
  redisReply* mixed =
      reader.read("*6\r\n:42\r\n$-1\r\n+OK\r\n-ERR bad\r\n*0\r\n*2\r\n$1\r\nx\r\n*-1\r\n");
  REQUIRE(mixed->elements == 6);
  CHECK(mixed->element[0]->type == REDIS_REPLY_INTEGER);
  CHECK(mixed->element[0]->integer == 42);
  CHECK(mixed->element[1]->type == REDIS_REPLY_NIL);
  CHECK(mixed->element[2]->type == REDIS_REPLY_STATUS);
  CHECK(str(mixed->element[2]) == "OK");
  CHECK(mixed->element[3]->type == REDIS_REPLY_ERROR);
  CHECK(str(mixed->element[3]) == "ERR bad");
  CHECK(mixed->element[4]->type == REDIS_REPLY_ARRAY);
  CHECK(mixed->element[4]->elements == 0);
  CHECK(mixed->element[4]->element == nullptr);
  CHECK(str(mixed->element[5]->element[0]) == "x");
  CHECK(mixed->element[5]->element[1]->type == REDIS_REPLY_NIL);
  fn->freeObject(mixed);
}

TEST_CASE("the pools stay bounded: big buffers and surplus objects go back to malloc") {
  Reader reader(true);
  auto* fn = tier::detail::pooled_reply_functions();
  const std::string big(1024 * 1024, 'b');
  const auto before = tier::detail::reply_pool_size();
  redisReply* r = reader.read(bulk(big));
  CHECK(str(r) == big);
  fn->freeObject(r);
  CHECK(tier::detail::reply_pool_size().strings <= before.strings);  // 1 MiB is not kept

  std::string many = "*1000\r\n";
  for (int i = 0; i < 1000; ++i) {
    many += bulk("e" + std::to_string(i));
  }
  redisReply* wide = reader.read(many);
  REQUIRE(wide->elements == 1000);
  CHECK(str(wide->element[999]) == "e999");
  fn->freeObject(wide);
  const auto after = tier::detail::reply_pool_size();
  CHECK(after.replies <= 256);
  CHECK(after.strings <= 256);
}

TEST_CASE("replies cross between hiredis's own functions and the pooled ones") {
  Reader plain(false);
  Reader pooled(true);
  auto* fn = tier::detail::pooled_reply_functions();
  // Made by hiredis, freed here: its capacity is unknown, so its buffers are freed.
  fn->freeObject(plain.read(pmessage("from the default functions")));
  // Made here, freed by hiredis: plain malloc'd memory, freed like any reply.
  freeReplyObject(pooled.read(pmessage("from the pool")));
  redisReply* again = pooled.read(pmessage("still right"));
  CHECK(str(again->element[3]) == "still right");
  fn->freeObject(again);
}
