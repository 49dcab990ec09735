// The Python client's pytest suite (clients/python/tests) against this suite's real Redis
// and PostgreSQL and the real tierd and tierctl binaries: their addresses and paths go to
// pytest in the environment. Debian's python3 (python3-redis, python3-psycopg2,
// python3-pytest).

#include <sys/wait.h>

#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "support/helpers.hpp"
#include "support/servers.hpp"

TEST_CASE("the Python client's tests pass against the suite's servers and binaries") {
  const std::string python =
      ::access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
  ::setenv("TIER_TEST_REDIS_URL", tiertest::redis().url().c_str(), 1);
  ::setenv("TIER_TEST_PG_URL", tiertest::postgres().url().c_str(), 1);
  ::setenv("TIERD_PATH", TIERD_PATH, 1);
  ::setenv("TIERCTL_PATH", TIERCTL_PATH, 1);
  // -p no:cacheprovider: nothing written into the source tree; -rs: say why if one skips.
  const std::string cmd = "cd " + std::string(TIERD_SOURCE_DIR) + "/clients/python && " + python +
                          " -m pytest -q -rs -p no:cacheprovider tests";
  const tiertest::Shell r = tiertest::shell(cmd);
  const std::string& out = r.out;
  INFO(out);
  CHECK(r.status == 0);
  CHECK(out.find("skipped") == std::string::npos);  // every test ran
  WARN(out.substr(out.rfind('\n', out.size() - 2) + 1));
}
