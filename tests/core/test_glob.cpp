// The glob matcher on its own (routing, the overlap check); tests/transports/test_glob_redis.cpp
// checks it against redis-server itself.
#include <catch2/catch.hpp>

#include "tier/glob.hpp"

TEST_CASE("globs match like Redis and overlap is decided exactly") {
  using tier::glob_match;
  using tier::globs_overlap;
  CHECK(glob_match("events:*", "events:version_promoted"));
  CHECK_FALSE(glob_match("events:*", "system:x"));
  CHECK(glob_match("a?c", "abc"));
  CHECK(glob_match("a[bx]c", "axc"));
  CHECK_FALSE(glob_match("a[^bx]c", "axc"));
  CHECK(glob_match("a\\*c", "a*c"));
  CHECK_FALSE(glob_match("a\\*c", "abc"));
  CHECK(glob_match("*:*:x", "a:b:x"));

  CHECK(globs_overlap("events:*", "events:version_*"));
  CHECK(globs_overlap("*", "anything"));
  CHECK(globs_overlap("*:a", "b:*"));
  CHECK_FALSE(globs_overlap("events:*", "system:*"));
  CHECK_FALSE(globs_overlap("a:[xy]", "a:z"));
  CHECK_FALSE(globs_overlap("a*b", "a*c"));
  CHECK(globs_overlap("a*b*", "a*c"));
  CHECK_FALSE(globs_overlap("notifications:*", "events:*"));
}
