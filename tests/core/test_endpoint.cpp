#include <catch2/catch.hpp>

#include <cstdlib>

#include "tier/endpoint.hpp"
#include "tier/errors.hpp"

using tier::RedisEndpoint;
using namespace std::string_literals;

TEST_CASE("redis URLs", "[endpoint][unit]") {
  ::unsetenv("TIERD_REDIS_PASSWORD");
  ::unsetenv("REDISCLI_AUTH");
  auto a = RedisEndpoint::parse("redis://127.0.0.1:6380/2");
  CHECK(a.host == "127.0.0.1");
  CHECK(a.port == 6380);
  CHECK(a.db == 2);
  CHECK(a.password.empty());

  auto b = RedisEndpoint::parse("redis://alice:p%40ss@cache.internal:6379/0");
  CHECK(b.user == "alice");
  CHECK(b.password == "p@ss");
  CHECK(b.host == "cache.internal");
  CHECK(b.redacted() == "redis://alice:***@cache.internal:6379/0");

  auto c = RedisEndpoint::parse("redis://[::1]:7000");
  CHECK(c.host == "::1");
  CHECK(c.port == 7000);

  auto d = RedisEndpoint::parse("unix:///run/redis.sock?db=3");
  CHECK(d.unix_path == "/run/redis.sock");
  CHECK(d.db == 3);

  auto e = RedisEndpoint::parse("redis://localhost");
  CHECK(e.port == 6379);
}

TEST_CASE("redis URL errors name the problem and hide the password", "[endpoint][unit][bad]") {
  auto msg = [](const std::string& url) {
    try {
      RedisEndpoint::parse(url);
    } catch (const tier::InvalidArgument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK_THAT(msg("http://x"), Catch::Contains("redis://"));
  CHECK_THAT(msg("redis://h:99999"), Catch::Contains("port out of range"));
  CHECK_THAT(msg("redis://h:abc"), Catch::Contains("bad port"));
  CHECK_THAT(msg("redis://u:topsecret@h:abc"), !Catch::Contains("topsecret"));
  CHECK_THAT(msg("redis://h:1/x"), Catch::Contains("bad db"));
  CHECK_THAT(msg("unix://relative"), Catch::Contains("absolute"));
  CHECK_THAT(msg("redis://:1"), Catch::Contains("empty host"));
}

TEST_CASE("a parsed URL prints back as itself", "[endpoint][unit][bad]") {
  // Found by tests/fuzz/fuzz_endpoint: hosts that redacted() printed as another endpoint.
  auto msg = [](const std::string& url) {
    try {
      RedisEndpoint::parse_url(url);
    } catch (const tier::InvalidArgument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK_THAT(msg("redis://::1:6379"), Catch::Contains("brackets"));
  CHECK_THAT(msg("redis://_::1]:6379"), Catch::Contains("brackets"));
  CHECK_THAT(msg("redis://[::1]x"), Catch::Contains("expected ':port' after ']'"));
  CHECK_THAT(msg("redis://[[x]:1"), Catch::Contains("invalid host"));
  CHECK_THAT(msg("redis://h\0x:1"s), Catch::Contains("invalid host"));
  CHECK_THAT(msg("unix:///tmp/r\0x"s), Catch::Contains("control byte"));

  auto a = RedisEndpoint::parse_url("redis://a%3Ab%25:pw@h:1/2");
  CHECK(a.user == "a:b%");
  CHECK(a.redacted() == "redis://a%3Ab%25:***@h:1/2");
  CHECK(RedisEndpoint::parse_url(a.redacted()).user == "a:b%");
}

TEST_CASE("parse_url reads the URL only", "[endpoint][unit]") {
  ::setenv("TIERD_REDIS_PASSWORD", "from-env", 1);
  CHECK(RedisEndpoint::parse_url("redis://h").password.empty());
  CHECK(RedisEndpoint::parse_url("redis://secret@h").password == "secret");
  ::unsetenv("TIERD_REDIS_PASSWORD");
}

TEST_CASE("password from the environment", "[endpoint][unit]") {
  ::setenv("TIERD_REDIS_PASSWORD", "from-env", 1);
  CHECK(RedisEndpoint::parse("redis://h").password == "from-env");
  CHECK(RedisEndpoint::parse("redis://:url@h").password == "url");
  ::unsetenv("TIERD_REDIS_PASSWORD");
  ::setenv("REDISCLI_AUTH", "cli", 1);
  CHECK(RedisEndpoint::parse("redis://h").password == "cli");
  ::unsetenv("REDISCLI_AUTH");
}
