// Secrets from systemd credentials: LoadCredential= puts the Redis password in a file under
// $CREDENTIALS_DIRECTORY and the unit points TIERD_REDIS_PASSWORD_FILE at it. Checked against
// a real redis-server with requirepass.

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <string>

#include "support/servers.hpp"
#include "tier/endpoint.hpp"
#include "tier/errors.hpp"
#include "tier/sync/client.hpp"

namespace {

// Clears the password variables on entry and exit, so tests do not leak into each other.
struct CleanPasswordEnv {
  CleanPasswordEnv() { clear(); }
  ~CleanPasswordEnv() { clear(); }
  static void clear() {
    ::unsetenv("TIERD_REDIS_PASSWORD");
    ::unsetenv("TIERD_REDIS_PASSWORD_FILE");
    ::unsetenv("REDISCLI_AUTH");
  }
};

std::string ping(const tier::RedisEndpoint& ep) {
  tier::ClientOptions o;
  o.endpoint = ep;
  tier::Client client(o);
  auto reply = client.exec({tier::Command::of({"PING"})});
  if (!reply.ok()) {
    return reply.error().describe();
  }
  return reply->front().str;
}

}  // namespace

TEST_CASE("credentials: TIERD_REDIS_PASSWORD_FILE authenticates to Redis", "[systemd]") {
  CleanPasswordEnv env;
  tiertest::RedisOptions ro;
  ro.password = "s3cret-from-credential";
  tiertest::RedisServer redis(ro);
  tiertest::TempDir creds("creds");
  std::string file = creds.path() + "/redis-password";
  {
    std::ofstream out(file);
    out << "s3cret-from-credential\n";  // editors and `echo` add the newline
  }
  std::string url = "redis://127.0.0.1:" + std::to_string(redis.port()) + "/0";

  // Without the password the server refuses us: the file is what makes the difference.
  CHECK(ping(tier::RedisEndpoint::parse(url)) != "PONG");

  ::setenv("TIERD_REDIS_PASSWORD_FILE", file.c_str(), 1);
  auto ep = tier::RedisEndpoint::parse(url);
  CHECK(ep.password == "s3cret-from-credential");
  CHECK(ping(ep) == "PONG");
  // Never shown.
  CHECK(ep.redacted().find("s3cret") == std::string::npos);

  // TIERD_REDIS_PASSWORD wins over the file, and a password in the URL over both.
  ::setenv("TIERD_REDIS_PASSWORD", "from-env", 1);
  CHECK(tier::RedisEndpoint::parse(url).password == "from-env");
  CHECK(tier::RedisEndpoint::parse("redis://:inurl@127.0.0.1:6379").password == "inurl");
}

TEST_CASE("credentials: unreadable or empty password file is a clear error", "[systemd]") {
  CleanPasswordEnv env;
  tiertest::TempDir creds("creds");
  std::string missing = creds.path() + "/nope";
  ::setenv("TIERD_REDIS_PASSWORD_FILE", missing.c_str(), 1);
  try {
    tier::RedisEndpoint::parse("redis://127.0.0.1:6379");
    FAIL("a missing password file was accepted");
  } catch (const tier::InvalidArgument& e) {
    CHECK_THAT(e.what(), Catch::Contains("TIERD_REDIS_PASSWORD_FILE") && Catch::Contains(missing) &&
                             Catch::Contains("cannot read"));
  }
  std::string empty = creds.path() + "/empty";
  std::ofstream(empty) << "\n";
  ::setenv("TIERD_REDIS_PASSWORD_FILE", empty.c_str(), 1);
  CHECK_THROWS_WITH(tier::RedisEndpoint::parse("redis://127.0.0.1:6379"),
                    Catch::Contains("is empty"));
}
