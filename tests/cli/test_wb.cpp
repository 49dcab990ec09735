// tierctl wb: the real binary against the harness's redis-server. Entries are checked with
// XRANGE against the stream contract (docs/contracts.md, "Write-behind stream"); dead
// letters are made by the worker's own script (core/lua/write_behind_dead.lua), so the layout is
// the real one.

#include <catch2/catch.hpp>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/cli_runner.hpp"
#include "support/helpers.hpp"
#include "support/servers.hpp"
#include "tier/op.hpp"
#include "tier/script.hpp"

using tiertest::CliResult;
using tiertest::describe;
using tiertest::tierctl;
using tiertest::with;
using Json = nlohmann::json;

namespace {

tier::Reply redis_cmd(std::vector<std::string> args) {
  return tiertest::redis().client().run(tier::raw(std::move(args)));
}

struct Entry {
  std::string id;
  std::map<std::string, std::string> fields;
};

std::vector<Entry> xrange(const std::string& stream) {
  auto r = redis_cmd({"XRANGE", stream, "-", "+"});
  std::vector<Entry> out;
  for (const auto& e : r.elements) {
    Entry x;
    x.id = e.elements[0].str;
    const auto& f = e.elements[1].elements;
    for (std::size_t i = 0; i + 1 < f.size(); i += 2) {
      x.fields[f[i].str] = f[i + 1].str;
    }
    out.push_back(std::move(x));
  }
  return out;
}

std::string chomp(std::string s) {
  while (!s.empty() && s.back() == '\n') {
    s.pop_back();
  }
  return s;
}

/// Reads `id` as group "tierd" would and dead-letters it with the worker's script.
std::string dead_letter(const std::string& stream, const std::string& id,
                        const std::string& error) {
  auto entries = xrange(stream);
  std::vector<std::string> args{"EVAL",
                                tier::script("write_behind_dead").source,
                                "2",
                                stream,
                                stream + ":dead",
                                "tierd",
                                id,
                                error,
                                "",
                                ""};
  for (const auto& e : entries) {
    if (e.id == id) {
      for (const auto& [k, v] : e.fields) {
        args.push_back(k);
        args.push_back(v);
      }
    }
  }
  auto r = redis_cmd(args);
  REQUIRE(r.is_string());
  return r.str;
}

}  // namespace

TEST_CASE("wb enqueue appends an entry with the stream contract's fields") {
  tiertest::TestKeys keys(tiertest::redis().client(), "cli_wb_enqueue");
  std::string stream = keys.prefix() + "writebehind:analysis_results";
  Json row = {{"project_id", "p1"}, {"code_hash", "ab"}, {"result", {{"ok", true}}}};

  auto up =
      tierctl(with(keys, {"wb", "enqueue", "analysis_results", row.dump(), "--version", "7"}));
  INFO(describe(up));
  REQUIRE(up.exit_code == 0);
  auto del = tierctl(with(keys, {"--json", "wb", "enqueue", "analysis_results",
                                 R"({"project_id":"p1","code_hash":"ab"})", "--delete"}));
  INFO(describe(del));
  REQUIRE(del.exit_code == 0);

  auto entries = xrange(stream);
  REQUIRE(entries.size() == 2);
  REQUIRE(entries[0].id == chomp(up.out));
  REQUIRE(entries[0].fields.size() == 3);
  REQUIRE(entries[0].fields["op"] == "upsert");
  REQUIRE(Json::parse(entries[0].fields["row"]) == row);
  REQUIRE(entries[0].fields["version"] == "7");
  REQUIRE(entries[1].fields.size() == 2);  // no version given: no version field
  REQUIRE(entries[1].fields["op"] == "delete");
  REQUIRE(Json::parse(entries[1].fields["row"]) ==
          Json({{"project_id", "p1"}, {"code_hash", "ab"}}));

  auto j = Json::parse(del.out);
  REQUIRE(j["id"] == entries[1].id);
  REQUIRE(j["op"] == "delete");
  REQUIRE(j["stream"] == stream);
  REQUIRE(j["table"] == "analysis_results");
}

TEST_CASE("wb status reports the numbers of a stream built by hand") {
  tiertest::TestKeys keys(tiertest::redis().client(), "cli_wb_status");
  std::string stream = keys.prefix() + "writebehind:orders";
  for (int i = 0; i < 5; ++i) {
    redis_cmd({"XADD", stream, "*", "op", "upsert", "row", "{\"id\":" + std::to_string(i) + "}"});
  }
  redis_cmd({"XGROUP", "CREATE", stream, "tierd", "0"});
  // Two delivered and not acknowledged; three not delivered yet.
  redis_cmd({"XREADGROUP", "GROUP", "tierd", "c1", "COUNT", "2", "STREAMS", stream, ">"});
  redis_cmd({"XADD", stream + ":dead", "*", "original_id", "1-1", "error", "e", "op", "upsert"});
  // A second table with a stream but no group yet.
  redis_cmd({"XADD", keys.prefix() + "writebehind:other", "*", "op", "upsert", "row", "{}"});

  auto r = tierctl(with(keys, {"--json", "wb", "status", "orders"}));
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  auto t = Json::parse(r.out)["tables"].at(0);
  REQUIRE(t["table"] == "orders");
  REQUIRE(t["length"] == 5);
  REQUIRE(t["pending"] == 2);
  REQUIRE(t["lag"] == 3);
  REQUIRE(t["dead_letters"] == 1);
  REQUIRE(t["oldest_pending_age_ms"].get<long long>() >= 0);
  REQUIRE(t["oldest_pending_age_ms"].get<long long>() < 60000);

  // Without a table: every table under the prefix, in name order; no group = lag -1.
  auto all = tierctl(with(keys, {"--json", "wb", "status"}));
  INFO(describe(all));
  REQUIRE(all.exit_code == 0);
  auto tables = Json::parse(all.out)["tables"];
  REQUIRE(tables.size() == 2);
  REQUIRE(tables[0]["table"] == "orders");
  REQUIRE(tables[1]["table"] == "other");
  REQUIRE(tables[1]["length"] == 1);
  REQUIRE(tables[1]["lag"] == -1);
  REQUIRE(tables[1]["oldest_pending_age_ms"] == -1);

  // The table for people: one line per table with the same figures.
  auto text = tierctl(with(keys, {"wb", "status", "orders"}));
  REQUIRE(text.exit_code == 0);
  auto line = text.out.substr(text.out.find('\n') + 1);
  REQUIRE(line.rfind("orders", 0) == 0);
  std::istringstream in(line);
  std::string name, length, lag, pending, oldest, dead;
  in >> name >> length >> lag >> pending >> oldest >> dead;
  REQUIRE(length == "5");
  REQUIRE(lag == "3");
  REQUIRE(pending == "2");
  REQUIRE(dead == "1");
}

TEST_CASE("wb dead lists the worker's dead letters; wb replay moves them back") {
  tiertest::TestKeys keys(tiertest::redis().client(), "cli_wb_dead");
  std::string stream = keys.prefix() + "writebehind:analysis_results";
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    auto r = tierctl(with(keys, {"wb", "enqueue", "analysis_results",
                                 "{\"project_id\":\"p" + std::to_string(i) + "\"}", "--version",
                                 std::to_string(i + 1)}));
    REQUIRE(r.exit_code == 0);
    ids.push_back(chomp(r.out));
  }
  redis_cmd({"XGROUP", "CREATE", stream, "tierd", "0"});
  redis_cmd({"XREADGROUP", "GROUP", "tierd", "c1", "STREAMS", stream, ">"});
  std::vector<std::string> dead_ids;
  for (int i = 0; i < 3; ++i) {
    dead_ids.push_back(
        dead_letter(stream, ids[i], "invalid input syntax for type json #" + std::to_string(i)));
  }
  REQUIRE(xrange(stream).empty());

  auto list = tierctl(with(keys, {"--json", "wb", "dead", "analysis_results", "--count", "2"}));
  INFO(describe(list));
  REQUIRE(list.exit_code == 0);
  auto dl = Json::parse(list.out)["dead_letters"];
  REQUIRE(dl.size() == 2);
  REQUIRE(dl[0]["id"] == dead_ids[0]);
  REQUIRE(dl[0]["original_id"] == ids[0]);
  REQUIRE(dl[0]["error"] == "invalid input syntax for type json #0");
  REQUIRE(dl[0]["fields"]["op"] == "upsert");
  REQUIRE(dl[0]["fields"]["version"] == "1");
  REQUIRE(Json::parse(dl[0]["fields"]["row"].get<std::string>())["project_id"] == "p0");

  auto text = tierctl(with(keys, {"wb", "dead", "analysis_results"}));
  REQUIRE(text.exit_code == 0);
  REQUIRE(text.out.find("invalid input syntax for type json #2") != std::string::npos);
  REQUIRE(text.out.find(dead_ids[2]) != std::string::npos);

  // One by id: it goes back with its original fields and leaves the dead-letter stream.
  auto one = tierctl(with(keys, {"wb", "replay", "analysis_results", dead_ids[1]}));
  INFO(describe(one));
  REQUIRE(one.exit_code == 0);
  REQUIRE(one.out == "1\n");
  auto back = xrange(stream);
  REQUIRE(back.size() == 1);
  REQUIRE(back[0].fields.size() == 3);
  REQUIRE(back[0].fields["op"] == "upsert");
  REQUIRE(back[0].fields["version"] == "2");
  REQUIRE(Json::parse(back[0].fields["row"])["project_id"] == "p1");
  REQUIRE(redis_cmd({"XLEN", stream + ":dead"}).integer == 2);

  // An id that is not (or no longer) a dead letter: exit 1, the others still move.
  auto again =
      tierctl(with(keys, {"--json", "wb", "replay", "analysis_results", dead_ids[1], dead_ids[0]}));
  INFO(describe(again));
  REQUIRE(again.exit_code == 1);
  REQUIRE(Json::parse(again.out) ==
          Json({{"table", "analysis_results"}, {"replayed", 1}, {"missing", 1}}));

  // No id: all of them.
  auto all = tierctl(with(keys, {"wb", "replay", "analysis_results"}));
  REQUIRE(all.exit_code == 0);
  REQUIRE(all.out == "1\n");
  REQUIRE(redis_cmd({"XLEN", stream + ":dead"}).integer == 0);
  REQUIRE(xrange(stream).size() == 3);
  auto none = tierctl(with(keys, {"wb", "replay", "analysis_results"}));
  REQUIRE(none.exit_code == 0);
  REQUIRE(none.out == "0\n");
}

TEST_CASE("wb replay of many dead letters moves every one of them") {
  tiertest::TestKeys keys(tiertest::redis().client(), "cli_wb_many");
  std::string stream = keys.prefix() + "writebehind:t";
  // More than one page (500) of the replay loop.
  for (int i = 0; i < 1203; ++i) {
    redis_cmd({"XADD", stream + ":dead", "*", "original_id", "1-" + std::to_string(i), "error", "e",
               "op", "upsert", "row", "{\"k\":" + std::to_string(i) + "}"});
  }
  auto r = tierctl(with(keys, {"wb", "replay", "t"}));
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  REQUIRE(r.out == "1203\n");
  REQUIRE(redis_cmd({"XLEN", stream}).integer == 1203);
  REQUIRE(redis_cmd({"XLEN", stream + ":dead"}).integer == 0);
}

TEST_CASE("wb usage errors exit 2 with a clear message and write nothing") {
  tiertest::TestKeys keys(tiertest::redis().client(), "cli_wb_usage");
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  std::vector<Case> bad{
      {{"wb", "enqueue", "t", "{not json"}, "not valid JSON"},
      {{"wb", "enqueue", "t", ""}, "not valid JSON"},
      {{"wb", "enqueue", "t", "[1,2]"}, "must be a JSON object, not array"},
      {{"wb", "enqueue", "t", "\"row\""}, "must be a JSON object, not string"},
      {{"wb", "enqueue", "t", "{}"}, "empty"},
      {{"wb", "enqueue", "bad;table", "{\"a\":1}"}, "table 'bad;table'"},
      {{"wb", "enqueue", "a:b", "{\"a\":1}"}, "table 'a:b'"},
      {{"wb", "enqueue", "1t", "{\"a\":1}"}, "must not start with a digit"},
      {{"wb", "enqueue", "", "{\"a\":1}"}, "must not be empty"},
      {{"wb", "enqueue", std::string(64, 't'), "{\"a\":1}"}, "longer than 63"},
      {{"wb", "enqueue", "t", "{\"a\":1}", "--version", "x"}, "--version"},
      {{"wb", "enqueue", "t"}, "JSON"},
      {{"wb", "status", "s p a c e"}, "table"},
      {{"wb", "dead", "t", "--count", "0"}, "--count"},
      {{"wb", "dead", "t\nx"}, "table"},
      {{"wb", "replay", "t", "abc"}, "not a stream id"},
      {{"wb", "replay", "t", "1-2-3"}, "not a stream id"},
      {{"wb", "replay", "t", "-1"}, "not a stream id"},
      {{"wb"}, "subcommand"},
      {{"wb", "frobnicate"}, ""},
  };
  for (const auto& c : bad) {
    auto r = tierctl(with(keys, c.args));
    INFO("args: " << Json(c.args).dump().substr(0, 200) << "\n" << describe(r).substr(0, 400));
    REQUIRE(r.exit_code == 2);
    REQUIRE(r.out.empty());
    REQUIRE(r.err.rfind("tierctl: ", 0) == 0);
    REQUIRE(r.err.find(c.says) != std::string::npos);
  }
  REQUIRE(redis_cmd({"EXISTS", keys.prefix() + "writebehind:t"}).integer == 0);

  // A key of another type under the stream name: Redis says WRONGTYPE, exit 4.
  redis_cmd({"SET", keys.prefix() + "writebehind:t", "x"});
  auto w = tierctl(with(keys, {"wb", "enqueue", "t", "{\"a\":1}"}));
  INFO(describe(w));
  REQUIRE(w.exit_code == 4);
  REQUIRE(w.err.find("WRONGTYPE") != std::string::npos);

  int port = tiertest::free_port();
  auto down = tierctl({"--redis", "redis://127.0.0.1:" + std::to_string(port), "wb", "status"});
  REQUIRE(down.exit_code == 3);
}
