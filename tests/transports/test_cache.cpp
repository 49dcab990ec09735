// Tier, batch, dedup, model and provider ops through both transports, against the
// harness's real redis-server.
#include <catch2/catch.hpp>

#include "support/helpers.hpp"
#include "support/servers.hpp"
#include "tier/cache.hpp"
#include "tier/dedup.hpp"
#include "tier/keys.hpp"
#include "tier/stats.hpp"
#include "tier/sync/scan_delete.hpp"
#include "tier/uv/scan_delete.hpp"

using namespace std::chrono_literals;
using tier::Json;
using tiertest::Runner;

namespace {
Runner::Kind transport() {
  return GENERATE(Runner::Kind::sync, Runner::Kind::async);
}
}  // namespace

TEST_CASE("tiers: set/get/exists/ttl/del with the key schema and default TTLs", "[cache]") {
  auto& redis = tiertest::redis();
  Runner run(transport(), redis.url());
  INFO(run.name());
  tiertest::TestKeys keys(redis.client(), "tiers");
  tier::Cache cache({.prefix = keys.prefix()});

  auto s = cache.session("sess-1", "cart");
  auto p = cache.project("proj-9", "config");
  auto g = cache.global("user", "42", "plan");
  CHECK(s.key == keys.prefix() + "session:sess-1:cart");
  CHECK(p.key == keys.prefix() + "project:proj-9:config");
  CHECK(g.key == keys.prefix() + "user:42:plan");

  REQUIRE(run.run(cache.set(s, Json{{"items", 3}})).ok());
  REQUIRE(run.run(cache.set(p, Json::array({1, 2}))).ok());
  REQUIRE(run.run(cache.set(g, "pro")).ok());

  auto got = run.run(cache.get(s));
  REQUIRE(got.ok());
  REQUIRE(got->has_value());
  CHECK((**got)["items"] == 3);
  CHECK(**run.run(cache.get(p)) == Json::array({1, 2}));
  CHECK(**run.run(cache.get(g)) == "pro");

  // The raw value in Redis is the JSON text, readable by any language.
  CHECK(*redis.client().run(tier::raw({"GET", s.key})).str.c_str() == '{');

  auto ttl_s = *run.run(cache.ttl(s));
  auto ttl_p = *run.run(cache.ttl(p));
  auto ttl_g = *run.run(cache.ttl(g));
  CHECK(ttl_s->count() > 290);
  CHECK(ttl_s->count() <= 300);
  CHECK(ttl_p->count() > 3590);
  CHECK(ttl_p->count() <= 3600);
  CHECK(ttl_g->count() > 86390);
  CHECK(ttl_g->count() <= 86400);

  CHECK(*run.run(cache.exists(s)));
  CHECK(*run.run(cache.del(s)));
  CHECK_FALSE(*run.run(cache.del(s)));
  CHECK_FALSE(*run.run(cache.exists(s)));
  CHECK_FALSE(run.run(cache.get(s))->has_value());
  CHECK_FALSE(run.run(cache.ttl(s))->has_value());

  // An explicit TTL wins over the tier's default.
  REQUIRE(run.run(cache.set(g, 1, 42s)).ok());
  CHECK(run.run(cache.ttl(g))->value().count() <= 42);
}

TEST_CASE("tiers: hit and miss counters per tier", "[cache]") {
  auto& redis = tiertest::redis();
  Runner run(transport(), redis.url());
  tiertest::TestKeys keys(redis.client(), "stats");
  tier::Cache cache({.prefix = keys.prefix()});
  auto k = cache.project("p", "k");
  REQUIRE_FALSE(run.run(cache.get(k))->has_value());
  REQUIRE(run.run(cache.set(k, 1)).ok());
  REQUIRE(run.run(cache.get(k))->has_value());
  REQUIRE(run.run(cache.get(k))->has_value());
  REQUIRE(run.run(cache.mget({k, cache.session("s", "absent")})).ok());
  auto st = cache.stats();
  CHECK(st.hits[int(tier::Tier::project)] == 3);
  CHECK(st.misses[int(tier::Tier::project)] == 1);
  CHECK(st.misses[int(tier::Tier::session)] == 1);
  CHECK(st.hit_ratio(tier::Tier::project) == Approx(0.75));
}

TEST_CASE("tiers: TTL jitter stays within its bound", "[cache]") {
  auto& redis = tiertest::redis();
  tiertest::TestKeys keys(redis.client(), "jitter");
  tier::Cache cache({.prefix = keys.prefix(), .ttl_jitter = 0.5});
  bool varied = false;
  long long first = -1;
  for (int i = 0; i < 40; ++i) {
    auto k = cache.session("s", "k" + std::to_string(i));
    redis.client().run(cache.set(k, i));
    auto t = redis.client().run(cache.ttl(k))->count();
    CHECK(t >= 299);
    CHECK(t <= 450);
    if (first < 0) {
      first = t;
    } else if (t != first) {
      varied = true;
    }
  }
  CHECK(varied);
}

TEST_CASE("batch: mset with per-key TTL and mget in one round trip", "[cache][batch]") {
  auto& redis = tiertest::redis();
  Runner run(transport(), redis.url());
  tiertest::TestKeys keys(redis.client(), "batch");
  tier::Cache cache({.prefix = keys.prefix()});
  std::vector<tier::BatchItem> items;
  std::vector<tier::TierKey> ks;
  for (int i = 0; i < 100; ++i) {
    auto k = cache.project("p1", "k" + std::to_string(i));
    items.push_back({k, Json{{"i", i}}, i == 7 ? std::optional(10s) : std::nullopt});
    ks.push_back(k);
  }
  ks.push_back(cache.project("p1", "missing"));
  REQUIRE(run.run(cache.mset(items)).ok());
  auto got = run.run(cache.mget(ks));
  REQUIRE(got.ok());
  REQUIRE(got->size() == 101);
  for (int i = 0; i < 100; ++i) {
    REQUIRE((*got)[i].has_value());
    CHECK((*(*got)[i])["i"] == i);
  }
  CHECK_FALSE((*got)[100].has_value());
  CHECK(run.run(cache.ttl(ks[7]))->value().count() <= 10);
  CHECK(run.run(cache.ttl(ks[8]))->value().count() > 3000);
  // Empty batches are fine.
  CHECK(run.run(cache.mget({}))->empty());
}

TEST_CASE("bad input: hostile ids, oversized and non-JSON values, wrong types", "[cache][bad]") {
  auto& redis = tiertest::redis();
  Runner run(transport(), redis.url());
  tiertest::TestKeys keys(redis.client(), "bad");
  tier::Cache cache({.prefix = keys.prefix(), .max_value_bytes = 1024});

  SECTION("empty and control-character ids are refused, naming the argument") {
    auto r1 = run.run(cache.set(cache.session("", "k"), 1));
    REQUIRE_FALSE(r1.ok());
    CHECK(r1.error().kind == tier::ErrorKind::invalid);
    CHECK_THAT(r1.error().message, Catch::Contains("session_id"));
    auto r2 = run.run(cache.get(cache.project("p\nx", "k")));
    REQUIRE_FALSE(r2.ok());
    CHECK_THAT(r2.error().message, Catch::Contains("project_id"));
    auto r3 = run.run(cache.get(cache.global("user", std::string("a\0b", 3), "m")));
    CHECK_FALSE(r3.ok());
    auto r4 = run.run(cache.get(cache.session("s", std::string(600, 'x'))));
    CHECK_FALSE(r4.ok());
    auto r5 = run.run(cache.get(cache.session("s", "\xff\xfe")));
    REQUIRE_FALSE(r5.ok());
    CHECK_THAT(r5.error().message, Catch::Contains("UTF-8"));
    // Nothing was written for any of them.
    CHECK(tier::delete_by_pattern(redis.client(), tier::glob_escape(keys.prefix()) + "*") == 0);
  }
  SECTION("oversized values are refused with their size and the limit") {
    auto r = run.run(cache.set(cache.session("s", "big"), std::string(2000, 'x')));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().kind == tier::ErrorKind::invalid);
    CHECK_THAT(r.error().message, Catch::Contains("1024-byte limit"));
    CHECK_FALSE(*run.run(cache.exists(cache.session("s", "big"))));
  }
  SECTION("a value with invalid UTF-8 is refused, not stored mangled") {
    auto r = run.run(cache.set(cache.session("s", "utf"), std::string("\xc3\x28")));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().kind == tier::ErrorKind::invalid);
  }
  SECTION("a stored value that is not JSON is a decode error naming the key") {
    auto k = cache.session("s", "raw");
    redis.client().run(tier::raw({"SET", k.key, "not json {"}));
    auto r = run.run(cache.get(k));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().kind == tier::ErrorKind::decode);
    CHECK_THAT(r.error().message, Catch::Contains(k.key));
  }
  SECTION("a key holding another type is a reply error (WRONGTYPE) naming the key") {
    auto k = cache.session("s", "list");
    redis.client().run(tier::raw({"RPUSH", k.key, "a"}));
    auto r = run.run(cache.get(k));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().kind == tier::ErrorKind::reply);
    CHECK_THAT(r.error().message, Catch::Contains("WRONGTYPE"));
    CHECK_THAT(r.error().message, Catch::Contains(k.key));
  }
  SECTION("non-positive TTLs are refused") {
    auto r = run.run(cache.set(cache.session("s", "t"), 1, 0s));
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.error().message, Catch::Contains("ttl"));
  }
  SECTION("the sync API throws the typed exception") {
    if (run.kind() == Runner::Kind::sync) {
      CHECK_THROWS_AS(run.client()->run(cache.get(cache.session("", "k"))), tier::InvalidArgument);
      auto k = cache.session("s", "list2");
      redis.client().run(tier::raw({"RPUSH", k.key, "a"}));
      CHECK_THROWS_AS(run.client()->run(cache.get(k)), tier::ReplyError);
    }
  }
}

TEST_CASE("dedup: analysis results by normalised code hash", "[dedup]") {
  auto& redis = tiertest::redis();
  Runner run(transport(), redis.url());
  tiertest::TestKeys keys(redis.client(), "dedup");
  tier::Cache cache({.prefix = keys.prefix()});
  tier::Dedup dedup(cache);
  std::string code = "def f(x):\r\n    return x  \r\n\r\n";
  std::string same = "def f(x):\n    return x\n";
  REQUIRE(run.run(dedup.cache_analysis_result(code, Json{{"score", 9}}, "proj")).ok());
  auto hit = run.run(dedup.get_cached_analysis(same, "proj"));
  REQUIRE(hit.ok());
  REQUIRE(hit->has_value());
  CHECK((**hit)["score"] == 9);
  // Stored under the documented key with the analysis TTL.
  auto k = keys.prefix() + "project:proj:analysis:" + tier::code_hash(same);
  CHECK(redis.client().run(tier::raw({"EXISTS", k})).integer == 1);
  CHECK(redis.client().run(tier::raw({"TTL", k})).integer > 3500);
  // Other project, other code: misses.
  CHECK_FALSE(run.run(dedup.get_cached_analysis(same, "other"))->has_value());
  CHECK_FALSE(run.run(dedup.get_cached_analysis("def g(): pass", "proj"))->has_value());
  // Bad project id.
  CHECK_FALSE(run.run(dedup.get_cached_analysis(same, "")).ok());
}

TEST_CASE("model responses and provider status", "[dedup]") {
  auto& redis = tiertest::redis();
  Runner run(transport(), redis.url());
  tiertest::TestKeys keys(redis.client(), "model");
  tier::Cache cache({.prefix = keys.prefix()});
  tier::Dedup dedup(cache);
  tier::Providers providers(cache);
  REQUIRE(
      run.run(dedup.cache_model_response("gpt", "4o", "Explain this", Json{{"text", "ok"}})).ok());
  auto r = run.run(dedup.get_model_response("gpt", "4o", "Explain this"));
  REQUIRE(r->has_value());
  CHECK((**r)["text"] == "ok");
  CHECK_FALSE(run.run(dedup.get_model_response("gpt", "4o", "Explain that"))->has_value());
  auto key = keys.prefix() + "model:gpt:4o:" + tier::sha256_hex("Explain this") + ":response";
  CHECK(redis.client().run(tier::raw({"TTL", key})).integer > 86000);

  REQUIRE(run.run(providers.set_health("openai", Json{{"up", true}})).ok());
  REQUIRE(run.run(providers.set_rate_limit_status("openai", Json{{"remaining", 10}}, 60s)).ok());
  CHECK((**run.run(providers.health("openai")))["up"] == true);
  CHECK((**run.run(providers.rate_limit_status("openai")))["remaining"] == 10);
  CHECK(redis.client()
            .run(tier::raw({"TTL", keys.prefix() + "provider:openai:health_status"}))
            .integer == -1);
  CHECK(redis.client()
            .run(tier::raw({"TTL", keys.prefix() + "provider:openai:rate_limit_status"}))
            .integer <= 60);
  CHECK_FALSE(run.run(providers.health("bad\x01name")).ok());
}

TEST_CASE("stats: INFO as typed fields", "[stats]") {
  auto& redis = tiertest::redis();
  Runner run(transport(), redis.url());
  auto info = run.run(tier::server_info());
  REQUIRE(info.ok());
  CHECK_FALSE(info->redis_version.empty());
  CHECK(info->used_memory > 0);
  CHECK(info->connected_clients >= 1);
  CHECK(info->total_commands_processed > 0);
  CHECK(info->raw.count("tcp_port") == 1);
}

TEST_CASE("JSON text: set_text/get_text check the text without building a DOM", "[cache]") {
  auto& redis = tiertest::redis();
  Runner run(transport(), redis.url());
  tiertest::TestKeys keys(redis.client(), "text");
  tier::Cache cache({.prefix = keys.prefix(), .max_value_bytes = 64});
  auto k = cache.session("s", "t");
  REQUIRE(run.run(cache.set_text(k, R"({"a": [1, 2.5e3, "\u00e9"]})")).ok());
  auto got = run.run(cache.get_text(k));
  REQUIRE(got.ok());
  REQUIRE(got->has_value());
  CHECK(**got == R"({"a": [1, 2.5e3, "\u00e9"]})");  // byte for byte
  CHECK((**run.run(cache.get(k)))["a"][1] == 2500);  // and readable as JSON
  REQUIRE(run.run(cache.set_text(k, "\"just a string\"")).ok());
  CHECK(**run.run(cache.get_text(k)) == "\"just a string\"");
  CHECK(run.run(cache.ttl(k))->value().count() <= 300);
  CHECK_FALSE(run.run(cache.get_text(cache.session("s", "absent")))->has_value());
  CHECK(cache.stats().hits[int(tier::Tier::session)] == 3);
  CHECK(cache.stats().misses[int(tier::Tier::session)] == 1);

  for (std::string bad : {"", "{", "{\"a\":1} x", "nul", "\"\xff\"", "[1,]"}) {
    auto r = run.run(cache.set_text(k, bad));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().kind == tier::ErrorKind::invalid);
    CHECK_THAT(r.error().message, Catch::Contains("not JSON"));
  }
  auto big = run.run(cache.set_text(k, "\"" + std::string(100, 'x') + "\""));
  REQUIRE_FALSE(big.ok());
  CHECK_THAT(big.error().message, Catch::Contains("64-byte limit"));
  // What is stored is untouched by the refused writes.
  CHECK(**run.run(cache.get_text(k)) == "\"just a string\"");

  redis.client().run(tier::raw({"SET", k.key, "{not json"}));
  auto r = run.run(cache.get_text(k));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().kind == tier::ErrorKind::decode);
  CHECK_THAT(r.error().message, Catch::Contains(k.key));
  CHECK_FALSE(run.run(cache.set_text(cache.session("", "t"), "1")).ok());
}
