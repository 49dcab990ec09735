// tierctl end to end: the real binary against the harness's redis-server, checking
// output, exit codes and the state left in Redis.

#include <unistd.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/cli_runner.hpp"
#include "support/helpers.hpp"
#include "support/servers.hpp"
#include "tier/cache.hpp"
#include "tier/dedup.hpp"
#include "tier/pubsub.hpp"

using tiertest::CliResult;
using tiertest::describe;
using tiertest::tierctl;
using tiertest::with;
using Json = nlohmann::json;

namespace {

tier::Reply redis_cmd(std::vector<std::string> args) {
  return tiertest::redis().client().run(tier::raw(std::move(args)));
}

long long ttl_of(const std::string& key) {
  return redis_cmd({"TTL", key}).integer;
}

// An error is exactly one line on stderr, prefixed with the program name.
void require_one_error_line(const CliResult& r) {
  INFO("stderr: " << r.err);
  REQUIRE(r.err.rfind("tierctl: ", 0) == 0);
  REQUIRE(r.err.find('\n') == r.err.size() - 1);
}

}  // namespace

TEST_CASE("set then get round-trips a JSON value in every tier, with the tier's TTL") {
  auto& client = tiertest::redis().client();
  tiertest::TestKeys keys(client, "cli_roundtrip");
  Json value = {{"score", 0.93}, {"tags", {"a", "ü"}}, {"nested", {{"n", nullptr}}}};

  struct Case {
    std::vector<std::string> parts;
    std::string key;
    long long ttl;
  };
  std::map<std::string, Case> cases{
      {"session", {{"s-1", "prefs"}, "session:s-1:prefs", 300}},
      {"project", {{"p-1", "summary"}, "project:p-1:summary", 3600}},
      {"global", {{"model", "gpt", "latency"}, "model:gpt:latency", 86400}},
  };
  for (auto& [tier, c] : cases) {
    SECTION(tier) {
      std::vector<std::string> set{"set", "--tier", tier};
      set.insert(set.end(), c.parts.begin(), c.parts.end());
      set.push_back(value.dump());
      auto r = tierctl(with(keys, set));
      INFO(describe(r));
      REQUIRE(r.exit_code == 0);
      REQUIRE(r.out == "OK\n");

      std::string full = keys.prefix() + c.key;
      REQUIRE(Json::parse(redis_cmd({"GET", full}).str) == value);
      long long ttl = ttl_of(full);
      REQUIRE(ttl <= c.ttl);
      REQUIRE(ttl >= c.ttl - 5);

      std::vector<std::string> get{"get", "--tier", tier};
      get.insert(get.end(), c.parts.begin(), c.parts.end());
      auto g = tierctl(with(keys, get));
      INFO(describe(g));
      REQUIRE(g.exit_code == 0);
      REQUIRE(Json::parse(g.out) == value);
      REQUIRE(g.err.empty());

      get.insert(get.begin(), "--json");
      auto gj = tierctl(with(keys, get));
      REQUIRE(gj.exit_code == 0);
      Json j = Json::parse(gj.out);
      REQUIRE(j["found"] == true);
      REQUIRE(j["key"] == full);
      REQUIRE(j["tier"] == tier);
      REQUIRE(j["value"] == value);
    }
  }
}

TEST_CASE("set --ttl overrides the tier's TTL and --json reports it") {
  tiertest::TestKeys keys(tiertest::redis().client(), "cli_ttl");
  auto r =
      tierctl(with(keys, {"--json", "set", "--tier", "project", "p", "k", "42", "--ttl", "77"}));
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  Json j = Json::parse(r.out);
  REQUIRE(j["ttl_s"] == 77);
  long long ttl = ttl_of(keys.prefix() + "project:p:k");
  REQUIRE(ttl <= 77);
  REQUIRE(ttl >= 72);
  REQUIRE(redis_cmd({"GET", keys.prefix() + "project:p:k"}).str == "42");
}

TEST_CASE("get of a missing key exits 1 with a message on stderr only") {
  tiertest::TestKeys keys(tiertest::redis().client(), "cli_missing");
  auto r = tierctl(with(keys, {"get", "--tier", "session", "nobody", "nothing"}));
  REQUIRE(r.exit_code == 1);
  REQUIRE(r.out.empty());
  require_one_error_line(r);
  REQUIRE(r.err.find("not found") != std::string::npos);

  auto j = tierctl(with(keys, {"--json", "get", "--tier", "global", "a", "b", "c"}));
  REQUIRE(j.exit_code == 1);
  REQUIRE(Json::parse(j.out)["found"] == false);
}

TEST_CASE("mget reads several keys of one id in order, missing ones marked") {
  tiertest::TestKeys keys(tiertest::redis().client(), "cli_mget");
  REQUIRE(tierctl(with(keys, {"set", "-t", "session", "s", "a", "1"})).exit_code == 0);
  REQUIRE(tierctl(with(keys, {"set", "-t", "session", "s", "c", R"({"x":"y"})"})).exit_code == 0);

  auto r = tierctl(with(keys, {"mget", "-t", "session", "s", "a", "b", "c"}));
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  REQUIRE(r.out == "1\n(nil)\n{\"x\":\"y\"}\n");

  auto j = tierctl(with(keys, {"--json", "mget", "-t", "session", "s", "a", "b", "c"}));
  REQUIRE(j.exit_code == 0);
  Json arr = Json::parse(j.out);
  REQUIRE(arr.size() == 3);
  REQUIRE(arr[0]["value"] == 1);
  REQUIRE(arr[1]["found"] == false);
  REQUIRE(arr[2]["key"] == keys.prefix() + "session:s:c");
  REQUIRE(arr[2]["value"] == Json{{"x", "y"}});

  // Global keys share TYPE and IDENTIFIER; the rest are metrics.
  REQUIRE(tierctl(with(keys, {"set", "-t", "global", "m", "i", "p50", "5"})).exit_code == 0);
  auto g = tierctl(with(keys, {"mget", "-t", "global", "m", "i", "p50", "p99"}));
  REQUIRE(g.out == "5\n(nil)\n");

  // One MGET, not one GET per key.
  auto before = redis_cmd({"INFO", "commandstats"}).str;
  auto count_of = [](const std::string& info, const std::string& cmd) {
    auto at = info.find("cmdstat_" + cmd + ":calls=");
    if (at == std::string::npos) {
      return 0LL;
    }
    return std::stoll(info.substr(at + cmd.size() + 15));
  };
  REQUIRE(tierctl(with(keys, {"mget", "-t", "project", "p", "a", "b", "c", "d"})).exit_code == 0);
  auto after = redis_cmd({"INFO", "commandstats"}).str;
  REQUIRE(count_of(after, "mget") == count_of(before, "mget") + 1);
  REQUIRE(count_of(after, "get") == count_of(before, "get"));
}

TEST_CASE("del removes the key and says whether it existed") {
  tiertest::TestKeys keys(tiertest::redis().client(), "cli_del");
  REQUIRE(tierctl(with(keys, {"set", "-t", "project", "p", "k", "true"})).exit_code == 0);
  auto r = tierctl(with(keys, {"--json", "del", "-t", "project", "p", "k"}));
  REQUIRE(r.exit_code == 0);
  REQUIRE(Json::parse(r.out)["deleted"] == true);
  REQUIRE(redis_cmd({"EXISTS", keys.prefix() + "project:p:k"}).integer == 0);
  auto again = tierctl(with(keys, {"del", "-t", "project", "p", "k"}));
  REQUIRE(again.exit_code == 0);
  REQUIRE(again.out == "absent\n");
}

TEST_CASE("usage errors exit 2 with one line on stderr and touch nothing") {
  tiertest::TestKeys keys(tiertest::redis().client(), "cli_usage");
  std::vector<std::vector<std::string>> bad{
      {"set", "-t", "session", "s", "k", "{not json"},           // bad JSON value
      {"set", "-t", "session", "s", "k", ""},                    // empty JSON value
      {"get", "-t", "session", "", "k"},                         // empty id
      {"set", "-t", "session", "s\x01x", "k", "1"},              // control character
      {"get", "-t", "session", std::string(600, 'a'), "k"},      // oversized id
      {"get", "-t", "nosuchtier", "s", "k"},                     // unknown tier
      {"get", "s", "k"},                                         // --tier missing
      {"get", "-t", "global", "only", "two"},                    // wrong number of parts
      {"set", "-t", "session", "s", "k", "1", "--ttl", "0"},     // TTL not positive
      {"set", "-t", "session", "s", "k", "1", "--ttl", "soon"},  // TTL not a number
      {"publish", "events:x", "[1,2]"},                          // message not an object
      {"publish", "events:x", "{"},                              // message not JSON
      {"invalidate", ""},                                        // empty pattern
      {"invalidate", "x:*", "--batch", "0"},                     // batch out of range
      {"clear-session", "bad\nid"},                              // hostile session id
      {"frobnicate"},                                            // unknown command
      {},                                                        // no command
  };
  for (const auto& args : bad) {
    auto r = tierctl(with(keys, args));
    INFO("args: " << Json(args).dump() << "\n" << describe(r));
    REQUIRE(r.exit_code == 2);
    REQUIRE(r.out.empty());
    require_one_error_line(r);
  }
  REQUIRE(redis_cmd({"EXISTS", keys.prefix() + "session:s:k"}).integer == 0);

  // The InvalidArgument message names what is wrong.
  auto empty_id = tierctl(with(keys, {"get", "-t", "session", "", "k"}));
  REQUIRE(empty_id.err.find("session_id") != std::string::npos);
  auto bad_url = tierctl({"--redis", "http://nowhere", "stats"});
  REQUIRE(bad_url.exit_code == 2);
  require_one_error_line(bad_url);
}

TEST_CASE("connection failures exit 3") {
  int port = tiertest::free_port();  // nothing listens there
  auto r = tierctl(
      {"--redis", "redis://127.0.0.1:" + std::to_string(port), "get", "-t", "session", "s", "k"});
  INFO(describe(r));
  REQUIRE(r.exit_code == 3);
  require_one_error_line(r);
  REQUIRE(r.err.find("127.0.0.1:" + std::to_string(port)) != std::string::npos);

  auto s = tierctl({"--redis", "redis://127.0.0.1:" + std::to_string(port), "stats"});
  REQUIRE(s.exit_code == 3);
}

TEST_CASE("Redis errors and undecodable values exit 4") {
  tiertest::TestKeys keys(tiertest::redis().client(), "cli_redis_err");
  redis_cmd({"RPUSH", keys.prefix() + "session:s:list", "x"});
  auto r = tierctl(with(keys, {"get", "-t", "session", "s", "list"}));
  INFO(describe(r));
  REQUIRE(r.exit_code == 4);
  require_one_error_line(r);
  REQUIRE(r.err.find("WRONGTYPE") != std::string::npos);

  redis_cmd({"SET", keys.prefix() + "session:s:text", "not json at all"});
  auto d = tierctl(with(keys, {"get", "-t", "session", "s", "text"}));
  REQUIRE(d.exit_code == 4);
  require_one_error_line(d);
}

TEST_CASE("the server URL and password come from the environment") {
  tiertest::TestKeys keys(tiertest::redis().client(), "cli_env");
  auto r = tierctl({"--prefix", keys.prefix(), "set", "-t", "session", "s", "k", "7"}, "",
                   {{"TIERD_REDIS_URL", tiertest::redis().url()}});
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  REQUIRE(redis_cmd({"GET", keys.prefix() + "session:s:k"}).str == "7");

  tiertest::RedisServer secured(tiertest::RedisOptions{.password = "s3cret-pw"});
  std::string url = "redis://127.0.0.1:" + std::to_string(secured.port());
  auto ok = tierctl({"--redis", url, "stats"}, "", {{"TIERD_REDIS_PASSWORD", "s3cret-pw"}});
  INFO(describe(ok));
  REQUIRE(ok.exit_code == 0);
  auto via_cli_auth = tierctl({"--redis", url, "stats"}, "", {{"REDISCLI_AUTH", "s3cret-pw"}});
  REQUIRE(via_cli_auth.exit_code == 0);
  auto wrong = tierctl(
      {"--redis", "redis://:wrong-pw@127.0.0.1:" + std::to_string(secured.port()), "stats"});
  REQUIRE(wrong.exit_code == 4);  // the server refused AUTH
  require_one_error_line(wrong);
  REQUIRE(wrong.err.find("wrong-pw") == std::string::npos);
}

TEST_CASE("publish reaches a tier::Client subscriber and prints the receiver count") {
  auto& srv = tiertest::redis();
  tier::Client sub_client(srv.url());
  auto sub = sub_client.subscribe({"events:cli_publish"}, {});
  Json msg = {{"id", "e-1"}, {"version", 3}};
  auto r = tierctl({"--redis", srv.url(), "publish", "events:cli_publish", msg.dump()});
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  REQUIRE(r.out == "1\n");
  auto m = sub.next(std::chrono::seconds(5));
  REQUIRE(m.has_value());
  REQUIRE(m->channel == "events:cli_publish");
  REQUIRE(Json::parse(m->payload) == msg);

  auto j = tierctl({"--redis", srv.url(), "--json", "publish", "events:nobody", "{}"});
  REQUIRE(Json::parse(j.out) == Json{{"channel", "events:nobody"}, {"receivers", 0}});
}

namespace {

long long numpat() {
  return redis_cmd({"PUBSUB", "NUMPAT"}).integer;
}

}  // namespace

TEST_CASE("subscribe --count prints published messages and exits") {
  auto& srv = tiertest::redis();
  long long before = numpat();
  tiertest::CliProcess p({"--redis", srv.url(), "--json", "subscribe", "cli_sub:*", "--count", "2",
                          "--timeout-ms", "10000"});
  REQUIRE(tiertest::eventually([&] { return numpat() > before; }));

  tier::Client pub(srv.url());
  pub.run(tier::publish("cli_sub:a", {{"n", 1}}));
  pub.run(tier::raw({"PUBLISH", "cli_sub:b", "plain text"}));
  pub.run(tier::publish("other:c", {{"n", 3}}));  // does not match: not printed

  auto r = p.wait();
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  std::istringstream lines(r.out);
  std::string first;
  std::string second;
  std::string extra;
  REQUIRE(std::getline(lines, first));
  REQUIRE(std::getline(lines, second));
  REQUIRE_FALSE(std::getline(lines, extra));
  Json a = Json::parse(first);
  REQUIRE(a["channel"] == "cli_sub:a");
  REQUIRE(a["pattern"] == "cli_sub:*");
  REQUIRE(a["message"] == Json{{"n", 1}});
  Json b = Json::parse(second);
  REQUIRE(b["channel"] == "cli_sub:b");
  REQUIRE(b["payload"] == "plain text");
}

TEST_CASE("subscribe stops on SIGINT with exit 0, and --count times out with exit 3") {
  auto& srv = tiertest::redis();
  {
    long long before = numpat();
    tiertest::CliProcess p({"--redis", srv.url(), "subscribe", "cli_int:*"});
    REQUIRE(tiertest::eventually([&] { return numpat() > before; }));
    tier::Client pub(srv.url());
    pub.run(tier::publish("cli_int:x", {{"k", "v"}}));
    // Plain output, flushed per message: visible before the process ends.
    REQUIRE(p.wait_for_output("cli_int:x {\"k\":\"v\"}\n"));
    ::kill(p.pid(), SIGINT);
    auto r = p.wait();
    INFO(describe(r));
    REQUIRE(r.exit_code == 0);
    REQUIRE(r.err.empty());
  }
  auto t = tierctl(
      {"--redis", srv.url(), "subscribe", "cli_quiet:*", "--count", "1", "--timeout-ms", "200"});
  REQUIRE(t.exit_code == 3);
  require_one_error_line(t);
}

TEST_CASE("invalidate deletes exactly the matching keys and prints the count") {
  auto& client = tiertest::redis().client();
  tiertest::TestKeys keys(client, "cli_invalidate");
  std::vector<std::string> mset{"MSET"};
  for (int i = 0; i < 250; ++i) {
    mset.push_back(keys("project:42:k" + std::to_string(i)));
    mset.push_back("1");
  }
  for (int i = 0; i < 40; ++i) {
    mset.push_back(keys("project:420:k" + std::to_string(i)));  // shares the text "42"
    mset.push_back("1");
    mset.push_back(keys("session:42:k" + std::to_string(i)));
    mset.push_back("1");
  }
  redis_cmd(mset);

  auto r = tierctl(with(keys, {"invalidate", "project:42:*", "--batch", "17"}));
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  REQUIRE(r.out == "250\n");
  REQUIRE(r.err.empty());  // stderr is a pipe here: no progress output
  std::vector<std::string> gone{"EXISTS"};
  for (int i = 0; i < 250; ++i) {
    gone.push_back(keys("project:42:k" + std::to_string(i)));
  }
  REQUIRE(redis_cmd(gone).integer == 0);
  std::vector<std::string> kept{"EXISTS"};
  for (int i = 0; i < 40; ++i) {
    kept.push_back(keys("project:420:k" + std::to_string(i)));
    kept.push_back(keys("session:42:k" + std::to_string(i)));
  }
  REQUIRE(redis_cmd(kept).integer == 80);

  auto j = tierctl(with(keys, {"--json", "invalidate", "session:*"}));
  Json out = Json::parse(j.out);
  REQUIRE(out["deleted"] == 40);
  REQUIRE(out["pattern"] == keys.prefix() + "session:*");
}

TEST_CASE("invalidate shows progress on stderr only when stderr is a terminal") {
  auto& client = tiertest::redis().client();
  tiertest::TestKeys keys(client, "cli_progress");
  std::vector<std::string> mset{"MSET"};
  for (int i = 0; i < 30; ++i) {
    mset.push_back(keys("g:" + std::to_string(i)));
    mset.push_back("1");
  }
  redis_cmd(mset);
  tiertest::CliProcess p(with(keys, {"invalidate", "g:*", "--batch", "10"}), "", {}, true);
  auto r = p.wait();
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  REQUIRE(r.out == "30\n");  // stdout stays a clean count
  REQUIRE(r.err.find("deleted 30 keys") != std::string::npos);
}

TEST_CASE("clear-session deletes one session's keys, glob characters in the id literal") {
  auto& client = tiertest::redis().client();
  tiertest::TestKeys keys(client, "cli_clear");
  redis_cmd({"MSET", keys("session:s*:a"), "1", keys("session:s*:b"), "1", keys("session:s1:a"),
             "1", keys("session:s2:a"), "1"});
  auto r = tierctl(with(keys, {"clear-session", "s*"}));
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  REQUIRE(r.out == "2\n");
  REQUIRE(redis_cmd({"EXISTS", keys("session:s1:a"), keys("session:s2:a")}).integer == 2);
  REQUIRE(redis_cmd({"EXISTS", keys("session:s*:a"), keys("session:s*:b")}).integer == 0);
}

TEST_CASE("dedup-hash prints tier::code_hash of a file or stdin") {
  std::string code = "def f(x):  \r\n    return x\t\r\n\r\n\n";
  tiertest::TempDir dir("cli_dedup");
  std::string path = dir.path() + "/code.py";
  {
    std::ofstream f(path, std::ios::binary);
    f << code;
  }
  std::string expected = tier::code_hash(code);
  auto r = tierctl({"dedup-hash", path});
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  REQUIRE(r.out == expected + "\n");
  // Normalisation makes CRLF and trailing blanks irrelevant.
  REQUIRE(expected == tier::code_hash("def f(x):\n    return x"));

  auto s = tierctl({"--json", "dedup-hash", "-"}, code);
  REQUIRE(s.exit_code == 0);
  Json j = Json::parse(s.out);
  REQUIRE(j["code_hash"] == expected);
  REQUIRE(j["bytes"] == code.size());

  auto missing = tierctl({"dedup-hash", dir.path() + "/nope.py"});
  REQUIRE(missing.exit_code == 2);
  require_one_error_line(missing);
}

TEST_CASE("stats shows server figures; --json has every typed field") {
  auto& srv = tiertest::redis();
  auto r = tierctl({"--redis", srv.url(), "--json", "stats"});
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  Json j = Json::parse(r.out);
  REQUIRE(j["used_memory"].get<std::uint64_t>() > 0);
  REQUIRE(!j["redis_version"].get<std::string>().empty());
  for (const char* field : {"uptime_s", "used_memory_peak", "maxmemory", "connected_clients",
                            "total_commands_processed", "keyspace_hits", "keyspace_misses",
                            "hit_ratio", "evicted_keys", "expired_keys", "keys_per_db"}) {
    INFO(field);
    REQUIRE(j.contains(field));
  }
  double ratio = j["hit_ratio"];
  REQUIRE(ratio >= 0.0);
  REQUIRE(ratio <= 1.0);

  auto plain = tierctl({"--redis", srv.url(), "stats"});
  REQUIRE(plain.exit_code == 0);
  REQUIRE(plain.out.find("hit_ratio") != std::string::npos);
  REQUIRE(plain.out.find("used_memory") != std::string::npos);
}

TEST_CASE("--version and --help exit 0 on stdout") {
  auto v = tierctl({"--version"});
  REQUIRE(v.exit_code == 0);
  REQUIRE(v.out.rfind("tierctl ", 0) == 0);
  auto h = tierctl({"--help"});
  REQUIRE(h.exit_code == 0);
  REQUIRE(h.out.find("Exit codes") != std::string::npos);
}

TEST_CASE("a server that stops answering or goes away exits 3") {
  tiertest::RedisServer server;
  std::string url = server.url();
  {
    long long before = 0;
    tiertest::CliProcess p({"--redis", url, "subscribe", "gone:*"});
    REQUIRE(tiertest::eventually([&] {
      return server.client().run(tier::raw({"PUBSUB", "NUMPAT"})).integer > before;
    }));
    server.stop();  // the subscription's connection is closed under it
    auto r = p.wait();
    INFO(describe(r));
    REQUIRE(r.exit_code == 3);
    require_one_error_line(r);
  }
  server.start();
  server.pause();  // the port accepts connections, nothing answers
  auto t0 = std::chrono::steady_clock::now();
  auto r = tierctl({"--redis", url, "stats"});
  server.resume();
  INFO(describe(r));
  REQUIRE(r.exit_code == 3);
  require_one_error_line(r);
  REQUIRE(r.err.find("timed out") != std::string::npos);
  // The default command timeout (2 s) bounds the wait.
  REQUIRE(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(8));
}
