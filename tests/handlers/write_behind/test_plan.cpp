// The write-behind worker's pure units: stream replies, coalescing, the statements of a
// batch and the schema check. No server: these are the decisions, the worker runs them.

#include <catch2/catch.hpp>

#include <map>
#include <string>
#include <vector>

#include "handlers/write_behind/plan.hpp"
#include "handlers/write_behind/stream.hpp"
#include "handlers/write_behind/worker.hpp"

using tier::Reply;
using tierd::wb::Entry;

namespace {

tierd::wb::WriteBehindTable results_table() {
  tierd::wb::WriteBehindTable t;
  t.name = "analysis_results";
  t.pg_table = "app.results";
  t.key_columns = {"project_id", "code_hash"};
  t.columns = {"result", "score"};
  t.version_column = "version";
  return t;
}

Entry upsert(std::string id, const std::string& row, std::optional<long long> version) {
  Entry e;
  e.id = std::move(id);
  e.fields = {{"op", "upsert"}, {"row", row}};
  if (version) {
    e.fields.emplace_back("version", std::to_string(*version));
  }
  return e;
}

Entry remove(std::string id, const std::string& key, long long version) {
  Entry e;
  e.id = std::move(id);
  e.fields = {{"op", "delete"}, {"row", key}, {"version", std::to_string(version)}};
  return e;
}

Reply str(std::string s) {
  Reply r;
  r.type = Reply::Type::string;
  r.str = std::move(s);
  return r;
}
Reply arr(std::vector<Reply> el) {
  Reply r;
  r.type = Reply::Type::array;
  r.elements = std::move(el);
  return r;
}
Reply nil() {
  return Reply{};
}
Reply err(std::string s) {
  Reply r;
  r.type = Reply::Type::error;
  r.str = std::move(s);
  return r;
}

template <class T>
tier::Result<T> decode(tier::Op<T>& op, Reply reply) {
  std::vector<Reply> replies;
  replies.push_back(std::move(reply));
  return op.decode(std::move(replies));
}

std::string value(const tierd::wb::RowLayout& layout, const tierd::wb::Change& c, const char* col) {
  return c.values[static_cast<std::size_t>(layout.colidx.at(col))].value_or("NULL");
}

}  // namespace

TEST_CASE("stream reads are ops: commands and replies, nil and deleted entries",
          "[writebehind][unit]") {
  auto live = tierd::wb::read_group("writebehind:{t}", "tierd", "c1", 50, ">",
                                    std::chrono::milliseconds(1000));
  REQUIRE(live.commands.size() == 1);
  CHECK(live.commands[0].args == std::vector<std::string>{"XREADGROUP", "GROUP", "tierd", "c1",
                                                          "COUNT", "50", "BLOCK", "1000", "STREAMS",
                                                          "writebehind:{t}", ">"});
  CHECK(live.timeout > std::chrono::milliseconds(1000));  // the block never times it out
  auto timed_out = decode(live, nil());
  REQUIRE(timed_out.ok());
  CHECK(timed_out->empty());

  auto got = decode(
      live,
      arr({arr({str("writebehind:{t}"), arr({arr({str("1-0"), arr({str("op"), str("upsert")})}),
                                             arr({str("2-0"), nil()}), str("junk")})})}));
  REQUIRE(got.ok());
  REQUIRE(got->size() == 2);
  CHECK((*got)[0].id == "1-0");
  CHECK((*got)[0].fields == std::vector<std::pair<std::string, std::string>>{{"op", "upsert"}});
  CHECK_FALSE((*got)[0].redelivered);
  CHECK((*got)[1].deleted);

  auto pending = tierd::wb::read_group("s", "g", "c", 10, "0");
  auto own = decode(pending, arr({arr({str("s"), arr({arr({str("5-0"), arr({})})})})}));
  REQUIRE(own.ok());
  CHECK((*own)[0].redelivered);

  auto nogroup = decode(pending, err("NOGROUP No such key 's' or consumer group 'g'"));
  REQUIRE_FALSE(nogroup.ok());
  CHECK(nogroup.error().code == "NOGROUP");

  auto claim = tierd::wb::auto_claim("s", "g", "c", std::chrono::milliseconds(30000), "0-0", 7);
  CHECK(claim.commands[0].args ==
        std::vector<std::string>{"XAUTOCLAIM", "s", "g", "c", "30000", "0-0", "COUNT", "7"});
  auto claimed = decode(claim, arr({str("9-0"), arr({arr({str("3-0"), arr({})})}), arr({})}));
  REQUIRE(claimed.ok());
  CHECK(claimed->next_cursor == "9-0");
  CHECK(claimed->entries.at(0).redelivered);
  CHECK_FALSE(decode(claim, str("what")).ok());

  auto counts = tierd::wb::delivery_counts("s", "g", "c", "1-0", "9-0");
  Reply one = arr({str("1-0"), str("c"), Reply{}, Reply{}});
  one.elements[2].type = one.elements[3].type = Reply::Type::integer;
  one.elements[2].integer = 100;
  one.elements[3].integer = 4;
  auto n = decode(counts, arr({one}));
  REQUIRE(n.ok());
  CHECK(n->at("1-0") == 4);

  auto group = tierd::wb::create_group("s", "g");
  CHECK(decode(group, err("BUSYGROUP Consumer Group name already exists")).ok());
  CHECK_FALSE(decode(group, err("WRONGTYPE Key is not a stream")).ok());
}

TEST_CASE("coalesce: newest version wins, older upserts fold their columns in",
          "[writebehind][unit]") {
  const auto cfg = results_table();
  auto layout = tierd::wb::row_layout(cfg);
  tierd::wb::RowScratch scratch;
  std::vector<Entry> entries{
      upsert("1-0", R"({"project_id":"p","code_hash":"a","result":"old","score":1})", 1),
      upsert("2-0", R"({"project_id":"p","code_hash":"a","result":"new"})", 2),
      upsert("3-0", R"({"project_id":"p","code_hash":"b","result":"x"})", 5),
      upsert("4-0", R"({"project_id":"p","code_hash":"b","result":"stale"})", 4),
      upsert("5-0", R"({"project_id":"p","code_hash":"c"})", std::nullopt),  // no version
      remove("6-0", R"({"project_id":"p","code_hash":"d"})", 9),
  };
  Entry gone;
  gone.id = "7-0";
  gone.deleted = true;
  entries.push_back(gone);
  auto c = tierd::wb::coalesce(layout, entries, {}, 10, scratch);

  CHECK(c.ack == std::vector<std::string>{"7-0"});
  REQUIRE(c.dead.size() == 1);
  CHECK(c.dead[0].first == 4);
  CHECK(c.dead[0].second.starts_with("malformed entry: no version"));
  REQUIRE(c.changes.size() == 3);
  CHECK(c.folded == 2);

  const auto& a = c.changes[0];
  CHECK(a.winner == 1);
  CHECK(a.entries == std::vector<std::size_t>{0, 1});
  CHECK(value(layout, a, "result") == "new");
  CHECK(value(layout, a, "score") == "1");  // folded in from the older upsert
  CHECK(a.version == 2);

  const auto& b = c.changes[1];
  CHECK(b.winner == 2);  // version 5 beats the later entry with version 4
  CHECK(b.entries == std::vector<std::size_t>{2, 3});
  CHECK(value(layout, b, "result") == "x");

  CHECK(c.changes[2].op == tier::WriteOp::del);
}

TEST_CASE("coalesce: entries delivered too often go to the dead letters", "[writebehind][unit]") {
  auto layout = tierd::wb::row_layout(results_table());
  tierd::wb::RowScratch scratch;
  std::vector<Entry> entries{
      upsert("1-0", R"({"project_id":"p","code_hash":"a"})", 1),
      upsert("2-0", R"({"project_id":"p","code_hash":"b"})", 1),
  };
  auto c = tierd::wb::coalesce(layout, entries, {{"1-0", 11}, {"2-0", 10}}, 10, scratch);
  REQUIRE(c.dead.size() == 1);
  CHECK(c.dead[0] ==
        std::pair<std::size_t, std::string>{0, "delivered 11 times, over max_deliveries 10"});
  CHECK(c.changes.size() == 1);
  // 0 = no limit
  CHECK(tierd::wb::coalesce(layout, entries, {{"1-0", 99}}, 0, scratch).dead.empty());
}

TEST_CASE("write_statements: staging, COPY, guarded upsert, tombstones and key locks",
          "[writebehind][unit]") {
  const auto cfg = results_table();
  REQUIRE_FALSE(tierd::wb::check_table(cfg));
  const auto t = tierd::wb::sql_table(cfg);
  CHECK(t.target == R"("app"."results")");
  CHECK(t.schema == "app");
  CHECK(t.relname == "results");
  auto layout = tierd::wb::row_layout(cfg);
  tierd::wb::RowScratch scratch;
  std::vector<Entry> entries{
      upsert("1-0", R"({"project_id":"p","code_hash":"a","result":"tab\there"})", 1),
      remove("2-0", R"({"project_id":"p","code_hash":"b"})", 2),
  };
  auto c = tierd::wb::coalesce(layout, entries, {}, 10, scratch);
  auto st = tierd::wb::write_statements(t, layout, c.changes, {0, 1});
  std::vector<std::string> sql;
  for (const auto& s : st) {
    sql.push_back(s.sql);
  }
  INFO(Catch::Detail::stringify(sql));
  REQUIRE(st.size() == 9);
  // The table lock first (exclusive: the batch deletes), then two shapes (upsert with its
  // columns, delete with the keys): a staging table and a COPY each, then the DML.
  CHECK(st[0].sql == R"(SELECT pg_advisory_xact_lock(hashtext(E'"app"."results"'), -1))");
  CHECK(st[1].sql.starts_with("CREATE TEMP TABLE wb_stage_0 ON COMMIT DROP"));
  CHECK(st[2].sql.starts_with("COPY wb_stage_0 ("));
  REQUIRE(st[2].copy_data);
  CHECK(st[2].copy_data->find("tab\\there") != std::string::npos);  // COPY-escaped
  CHECK(st[5].sql.find("ON CONFLICT (\"project_id\", \"code_hash\") DO UPDATE") !=
        std::string::npos);
  // The anti-join against the tombstones runs only when the table has tombstones.
  CHECK(st[5].sql.find("WHERE NOT EXISTS (SELECT 1 FROM tierd_tombstones WHERE table_name = "
                       "E'\"app\".\"results\"') UNION ALL SELECT") != std::string::npos);
  CHECK(st[5].sql.find("AND NOT EXISTS (SELECT 1 FROM tierd_tombstones AS d") != std::string::npos);
  CHECK(st[5].sql.find("t.\"version\" < EXCLUDED.\"version\"") != std::string::npos);
  CHECK(st[6].sql.starts_with("DELETE FROM tierd_tombstones"));
  CHECK(st[7].sql.starts_with("INSERT INTO tierd_tombstones"));
  // No parameters: the transaction goes as one query string.
  for (const auto& s : st) {
    CHECK(s.params.empty());
  }
  CHECK(st[8].sql.starts_with("DELETE FROM \"app\".\"results\" AS t USING wb_stage_1"));

  // Without a version column: no locks, no tombstones, last write wins.
  auto plain_cfg = cfg;
  plain_cfg.version_column.clear();
  auto plain_layout = tierd::wb::row_layout(plain_cfg);
  std::vector<Entry> plain{
      upsert("1-0", R"({"project_id":"p","code_hash":"a","result":1})", std::nullopt)};
  auto pc = tierd::wb::coalesce(plain_layout, plain, {}, 10, scratch);
  auto ps =
      tierd::wb::write_statements(tierd::wb::sql_table(plain_cfg), plain_layout, pc.changes, {0});
  REQUIRE(ps.size() == 3);
  for (const auto& s : ps) {
    CHECK(s.sql.find("tierd_tombstones") == std::string::npos);
    CHECK(s.sql.find("advisory") == std::string::npos);
  }

  // Upserts only: the table lock is shared, so such batches of two workers run together.
  auto uc = tierd::wb::coalesce(layout, {entries[0]}, {}, 10, scratch);
  auto us = tierd::wb::write_statements(t, layout, uc.changes, {0});
  REQUIRE(us.size() == 5);
  CHECK(us[0].sql.starts_with("SELECT pg_advisory_xact_lock_shared(hashtext("));
}

TEST_CASE("check_table and check_schema name the key that is wrong", "[writebehind][unit]") {
  auto cfg = results_table();
  auto bad = [&](auto change) {
    auto c = cfg;
    change(c);
    auto p = tierd::wb::check_table(c);
    REQUIRE(p);
    return p->key + ": " + p->message;
  };
  CHECK(bad([](auto& c) { c.key_columns.clear(); }) ==
        "key_columns: needs at least one key column");
  CHECK(bad([](auto& c) { c.columns.push_back(std::string(64, 'x')); }).starts_with("columns: "));
  CHECK(bad([](auto& c) { c.version_column = "bad\xff"; }).starts_with("version_column: "));
  CHECK(bad([](auto& c) { c.max_rows = 0; }) == "max_rows: must be 1..100000");
  CHECK(bad([](auto& c) { c.retry_max = std::chrono::milliseconds(1); }) ==
        "retry_max_ms: must not be below retry_min_ms");
  CHECK(bad([](auto& c) { c.name = "a b"; }).starts_with("name: "));
  CHECK(bad([](auto& c) {
          for (int i = 0; i < 70; ++i) {
            c.columns.push_back("c" + std::to_string(i));
          }
        }).starts_with("columns: at most 64 columns"));

  const auto t = tierd::wb::sql_table(cfg);
  auto layout = tierd::wb::row_layout(cfg);
  std::map<std::string, std::string> live{{"project_id", "text"},
                                          {"code_hash", "text"},
                                          {"result", "jsonb"},
                                          {"score", "integer"},
                                          {"version", "bigint"}};
  CHECK_FALSE(tierd::wb::check_schema(cfg, t, live, layout));
  CHECK(layout.is_json[static_cast<std::size_t>(layout.colidx.at("result"))]);
  CHECK_FALSE(layout.is_json[static_cast<std::size_t>(layout.colidx.at("score"))]);

  live.erase("score");
  CHECK(tierd::wb::check_schema(cfg, t, live, layout) ==
        "write-behind table 'analysis_results': columns[1]: column \"score\" does not exist in "
        "\"app\".\"results\"");
  CHECK(tierd::wb::check_schema(cfg, t, {}, layout) ==
        "write-behind table 'analysis_results': PostgreSQL table \"app\".\"results\" not found");
}
