// tier::glob_match against the real redis-server's own matcher (SCAN MATCH): the same
// patterns must select the same texts, or routing (PSUBSCRIBE), pattern invalidation
// (SCAN MATCH) and the overlap check would disagree with Redis.
#include <catch2/catch.hpp>
#include <set>
#include <string>
#include <vector>

#include "support/servers.hpp"
#include "tier/glob.hpp"
#include "tier/op.hpp"
#include "tier/sync/client.hpp"

TEST_CASE("glob_match selects what Redis's SCAN MATCH selects", "[glob]") {
  auto& server = tiertest::redis();
  tier::ClientOptions o;
  o.endpoint = tier::RedisEndpoint::parse(server.url());
  o.endpoint.db = 9;  // a database of its own
  tier::Client c(o);
  c.run(tier::raw({"FLUSHDB"}));
  const std::vector<std::string> texts = {
      "a",   "b",  "c",   "-",  "ab",  "bb", "cb",  "abc", "\\",  "*",  "?",        "[",
      "]",   "^",  "ax",  "bx", "cx",  "dx", "a[",  "a]",  "x",   "a-", "events:a", "events:",
      "e:1", "a*", "a\\", "zz", "a.b", "[]", "a^b", "Ab",  "\\a", "^a", "b-",       "!a"};
  for (const auto& t : texts) {
    c.run(tier::raw({"SET", t, "1"}));
  }
  const std::vector<std::string> patterns = {
      "*",     "a*",     "*b",    "?b",     "a?",    "[ab]",     "[a-c]x", "[^a]b", "[^a-b]x",
      "[a-]",  "[-a]",   "[]",    "[]]",    "[\\]]", "\\\\",     "\\*",    "\\?",   "a\\*",
      "[z-a]", "[c-a]x", "a[",    "[",      "]",     "events:*", "e:?",    "*:*",   "[[]",
      "a\\",   "\\a",    "[\\-]", "[!a]a",  "a[^]]", "[a-c-e]",  "**",     "?",     "[^]",
      "[a\\]", "^*",     "*^*",   "[A-Z]b", "a.b",   "[.]",      "[a-a]"};
  for (const auto& p : patterns) {
    std::set<std::string> redis_says;
    std::string cursor = "0";
    do {
      const auto r = c.run(tier::raw({"SCAN", cursor, "MATCH", p, "COUNT", "1000"}));
      cursor = r.elements.at(0).str;
      for (const auto& k : r.elements.at(1).elements) {
        redis_says.insert(k.str);
      }
    } while (cursor != "0");
    for (const auto& t : texts) {
      INFO("pattern '" << p << "' text '" << t << "'");
      CHECK(tier::glob_match(p, t) == (redis_says.count(t) == 1));
    }
  }
  c.run(tier::raw({"FLUSHDB"}));
}
