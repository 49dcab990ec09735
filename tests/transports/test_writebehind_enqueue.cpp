// The library side of write-behind through both transports: XADD records in the stream
// contract, and the write_behind script that sets the cache and enqueues atomically.
#include <catch2/catch.hpp>

#include "support/helpers.hpp"
#include "support/servers.hpp"
#include "tier/writebehind.hpp"

using namespace std::chrono_literals;
using tiertest::Runner;

namespace {
// field -> value of every entry of a stream, oldest first.
std::vector<std::map<std::string, std::string>> entries(tier::Client& c, const std::string& s) {
  auto r = c.run(tier::raw({"XRANGE", s, "-", "+"}));
  std::vector<std::map<std::string, std::string>> out;
  for (auto& e : r.elements) {
    std::map<std::string, std::string> m;
    auto& f = e.elements.at(1).elements;
    for (std::size_t i = 0; i + 1 < f.size(); i += 2) {
      m[f[i].str] = f[i + 1].str;
    }
    m["_id"] = e.elements.at(0).str;
    out.push_back(std::move(m));
  }
  return out;
}
}  // namespace

TEST_CASE("WriteBehind: enqueue appends records in the stream contract", "[wb]") {
  auto& redis = tiertest::redis();
  for (auto kind : {Runner::Kind::sync, Runner::Kind::async}) {
    Runner run(kind, redis.url());
    INFO(run.name());
    tiertest::TestKeys keys(redis.client(), "wb-enq");
    tier::WriteBehind wb({.prefix = keys.prefix()});
    CHECK(wb.stream("results") == keys.prefix() + "writebehind:results");
    CHECK(wb.dead_stream("results") == keys.prefix() + "writebehind:results:dead");
    auto id1 = run.run(wb.enqueue("results", {{"id", "a"}, {"n", 1}}, 7));
    REQUIRE(id1.ok());
    auto id2 = run.run(wb.enqueue("results", {{"id", "b"}}));
    REQUIRE(id2.ok());
    auto id3 = run.run(wb.enqueue_delete("results", {{"id", "a"}}, 8));
    REQUIRE(id3.ok());
    auto e = entries(redis.client(), wb.stream("results"));
    REQUIRE(e.size() == 3);
    CHECK(e[0]["_id"] == *id1);
    CHECK(e[0]["op"] == "upsert");
    CHECK(tier::Json::parse(e[0]["row"]) == tier::Json{{"id", "a"}, {"n", 1}});
    CHECK(e[0]["version"] == "7");
    CHECK(e[1].count("version") == 0);
    CHECK(e[2]["op"] == "delete");
    CHECK(e[2]["version"] == "8");
  }
}

TEST_CASE("WriteBehind: bad input is refused before anything is written", "[wb]") {
  auto& redis = tiertest::redis();
  for (auto kind : {Runner::Kind::sync, Runner::Kind::async}) {
    Runner run(kind, redis.url());
    INFO(run.name());
    tiertest::TestKeys keys(redis.client(), "wb-bad");
    tier::WriteBehind wb({.prefix = keys.prefix(), .max_row_bytes = 1000});
    tier::Cache cache({.prefix = keys.prefix()});
    auto expect_invalid = [&](tier::Result<std::string> r, const std::string& words) {
      REQUIRE_FALSE(r.ok());
      CHECK(r.error().kind == tier::ErrorKind::invalid);
      CHECK_THAT(r.error().message, Catch::Contains(words));
    };
    expect_invalid(run.run(wb.enqueue("results", tier::Json::array({1, 2}))), "JSON object");
    expect_invalid(run.run(wb.enqueue("results", tier::Json::object())), "empty");
    expect_invalid(run.run(wb.enqueue("res;DROP TABLE x", {{"id", 1}})), "only letters");
    expect_invalid(run.run(wb.enqueue("", {{"id", 1}})), "empty");
    expect_invalid(run.run(wb.enqueue("1abc", {{"id", 1}})), "digit");
    expect_invalid(run.run(wb.enqueue("a.b.c", {{"id", 1}})), "schema");
    expect_invalid(run.run(wb.enqueue(std::string(64, 't'), {{"id", 1}})), "63");
    expect_invalid(run.run(wb.enqueue("results", {{"id", std::string(2000, 'x')}})), "limit");
    expect_invalid(run.run(wb.enqueue("results", {{"id", std::string("\xff\xfe")}})), "UTF-8");
    expect_invalid(
        run.run(wb.write_behind(cache, cache.project("p", "k"), 1, 0s, "results", {{"id", 1}}, 1)),
        "ttl");
    expect_invalid(run.run(wb.write_behind(cache, cache.project("", "k"), 1, std::nullopt,
                                           "results", {{"id", 1}}, 1)),
                   "project_id");
    CHECK(redis.client().run(tier::raw({"EXISTS", wb.stream("results")})).integer == 0);
    CHECK(wb.enqueue("schema1.results", {{"id", 1}}).invalid == std::nullopt);
  }
}

TEST_CASE("write_behind: the cache value and the stream entry are written together", "[wb][lua]") {
  auto& redis = tiertest::redis();
  for (auto kind : {Runner::Kind::sync, Runner::Kind::async}) {
    Runner run(kind, redis.url());
    INFO(run.name());
    tiertest::TestKeys keys(redis.client(), "wb-lua");
    tier::WriteBehind wb({.prefix = keys.prefix()});
    tier::Cache cache({.prefix = keys.prefix()});
    auto key = cache.project("p1", "analysis:abc");
    tier::Json value{{"score", 0.5}};
    auto id = run.run(wb.write_behind(cache, key, value, 120s, "analysis_results",
                                      {{"project_id", "p1"}, {"code_hash", "abc"}}, 3));
    REQUIRE(id.ok());
    auto got = run.run(cache.get(key));
    REQUIRE(got.ok());
    CHECK(*got == value);
    auto ttl = redis.client().run(tier::raw({"TTL", key.key})).integer;
    CHECK(ttl > 100);
    CHECK(ttl <= 120);
    auto e = entries(redis.client(), wb.stream("analysis_results"));
    REQUIRE(e.size() == 1);
    CHECK(e[0]["_id"] == *id);
    CHECK(e[0]["op"] == "upsert");
    CHECK(e[0]["version"] == "3");
    CHECK(tier::Json::parse(e[0]["row"])["code_hash"] == "abc");

    // No version: the record has no version field; default TTL of the tier.
    auto key2 = cache.project("p1", "analysis:def");
    REQUIRE(run.run(wb.write_behind(cache, key2, 1, std::nullopt, "analysis_results",
                                    {{"project_id", "p1"}, {"code_hash", "def"}}, std::nullopt))
                .ok());
    e = entries(redis.client(), wb.stream("analysis_results"));
    REQUIRE(e.size() == 2);
    CHECK(e[1].count("version") == 0);
    CHECK(redis.client().run(tier::raw({"TTL", key2.key})).integer > 3000);

    // The stream key holds something else: neither write happens.
    redis.client().run(tier::raw({"SET", wb.stream("broken"), "x"}));
    auto key3 = cache.project("p1", "analysis:ghi");
    auto bad = run.run(
        wb.write_behind(cache, key3, 1, 60s, "broken", {{"project_id", "p1"}}, std::nullopt));
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error().kind == tier::ErrorKind::reply);
    CHECK_THAT(bad.error().message, Catch::Contains("WRONGTYPE"));
    CHECK(redis.client().run(tier::raw({"EXISTS", key3.key})).integer == 0);
  }
}

TEST_CASE("WriteBehind: status, dead letters and replay", "[wb][dead]") {
  auto& redis = tiertest::redis();
  for (auto kind : {Runner::Kind::sync, Runner::Kind::async}) {
    Runner run(kind, redis.url());
    INFO(run.name());
    tiertest::TestKeys keys(redis.client(), "wb-status");
    tier::WriteBehind wb({.prefix = keys.prefix()});
    auto none = run.run(wb.status("items"));
    REQUIRE(none.ok());
    CHECK(none->length == 0);
    CHECK(none->oldest_pending_age_ms == -1);

    REQUIRE(run.run(wb.enqueue("items", {{"id", 1}}, 1)).ok());
    REQUIRE(run.run(wb.enqueue("items", {{"id", 2}}, 1)).ok());
    auto& c = redis.client();
    c.run(tier::raw({"XGROUP", "CREATE", wb.stream("items"), "tierd", "0"}));
    c.run(tier::raw(
        {"XREADGROUP", "GROUP", "tierd", "w1", "COUNT", "1", "STREAMS", wb.stream("items"), ">"}));
    auto st = run.run(wb.status("items"));
    REQUIRE(st.ok());
    CHECK(st->length == 2);
    CHECK(st->pending == 1);
    CHECK(st->oldest_pending_age_ms >= 0);
    CHECK(st->lag == 1);

    // A dead letter as the worker writes it.
    auto dead_id = c.run(tier::raw({"XADD", wb.dead_stream("items"), "*", "original_id", "1-1",
                                    "error", "null value in column", "op", "upsert", "row",
                                    R"({"id":3})", "version", "4"}))
                       .str;
    auto dl = run.run(wb.dead_letters("items"));
    REQUIRE(dl.ok());
    REQUIRE(dl->size() == 1);
    CHECK(dl->at(0).id == dead_id);
    CHECK(dl->at(0).original_id == "1-1");
    CHECK(dl->at(0).error == "null value in column");
    CHECK(dl->at(0).fields == std::vector<std::pair<std::string, std::string>>{
                                  {"op", "upsert"}, {"row", R"({"id":3})"}, {"version", "4"}});
    CHECK(run.run(wb.status("items"))->dead_letters == 1);

    auto moved = run.run(wb.replay("items", {dead_id, "9-9"}));
    REQUIRE(moved.ok());
    CHECK(*moved == 1);
    CHECK(c.run(tier::raw({"XLEN", wb.dead_stream("items")})).integer == 0);
    auto last = c.run(tier::raw({"XREVRANGE", wb.stream("items"), "+", "-", "COUNT", "1"}));
    auto& f = last.elements.at(0).elements.at(1).elements;
    REQUIRE(f.size() == 6);
    CHECK(f[0].str == "op");
    CHECK(f[3].str == R"({"id":3})");
    CHECK(f[5].str == "4");
    auto bad = run.run(wb.replay("items", {}));
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error().kind == tier::ErrorKind::invalid);
    CHECK_FALSE(run.run(wb.dead_letters("bad table")).ok());
  }
}
