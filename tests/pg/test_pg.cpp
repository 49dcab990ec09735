// tier::PgConn against a real PostgreSQL: parameters, SQLSTATE in errors, COPY, pipelined
// transactions that roll back, deadlines, and a server that stops and comes back.
#include <catch2/catch.hpp>

#include "support/helpers.hpp"
#include "support/servers.hpp"
#include "tier/errors.hpp"
#include "tier/pg/conn.hpp"

using namespace std::chrono_literals;

namespace {

tier::PgOptions options_for(const tiertest::PgServer& pg) {
  tier::PgOptions o;
  o.conninfo = pg.conninfo();
  o.connect_timeout = 2000ms;
  o.query_timeout = 3000ms;
  o.reconnect_min = 20ms;
  o.reconnect_max = 200ms;
  return o;
}

// Runs one job on the loop and waits for its callback.
tier::Result<std::vector<tier::PgResult>> run_job(
    tiertest::TestLoop& loop, const std::function<void(tier::PgCallback)>& submit) {
  std::optional<tier::Result<std::vector<tier::PgResult>>> out;
  submit([&](tier::Result<std::vector<tier::PgResult>> r) { out.emplace(std::move(r)); });
  loop.run_until([&] { return out.has_value(); }, 15s);
  if (!out) {
    return tier::Error{tier::ErrorKind::timeout, "test: no callback within 15 s"};
  }
  return std::move(*out);
}

tier::Result<tier::PgResult> query(tiertest::TestLoop& loop, tier::PgConn& pg, std::string sql,
                                   std::vector<std::optional<std::string>> params = {},
                                   std::chrono::milliseconds timeout = 0ms) {
  std::optional<tier::Result<tier::PgResult>> out;
  pg.query(
      std::move(sql), std::move(params), [&](tier::Result<tier::PgResult> r) { out.emplace(r); },
      timeout);
  loop.run_until([&] { return out.has_value(); }, 15s);
  if (!out) {
    return tier::Error{tier::ErrorKind::timeout, "test: no callback within 15 s"};
  }
  return std::move(*out);
}

}  // namespace

TEST_CASE("PgConn: parameters are bound, rows and NULLs come back", "[pg]") {
  auto& server = tiertest::postgres();
  tiertest::TestLoop loop;
  tier::PgConn pg(loop.get(), options_for(server));
  pg.start();
  auto r = query(loop, pg, "SELECT $1::int + 1 AS n, $2::text AS t, $3::text IS NULL AS isnull",
                 {"41", "it's \"quoted\"; DROP TABLE x", std::nullopt});
  REQUIRE(r.ok());
  REQUIRE(r->rows.size() == 1);
  CHECK(r->columns == std::vector<std::string>{"n", "t", "isnull"});
  CHECK(r->rows[0][0] == "42");
  CHECK(r->rows[0][1] == "it's \"quoted\"; DROP TABLE x");
  CHECK(r->rows[0][2] == "t");
  auto n = query(loop, pg, "SELECT NULL::text");
  REQUIRE(n.ok());
  CHECK_FALSE(n->rows[0][0].has_value());
  // statement_timeout is set at connect (defaults to the query timeout).
  auto st = query(loop, pg, "SHOW statement_timeout");
  REQUIRE(st.ok());
  CHECK(st->rows[0][0] == "3s");
  CHECK(pg.state() == tier::LinkState::ready);
}

TEST_CASE("PgConn: server errors carry SQLSTATE; the connection stays usable", "[pg]") {
  auto& server = tiertest::postgres();
  server.query("DROP TABLE IF EXISTS pg_err; CREATE TABLE pg_err(id int PRIMARY KEY, v int)");
  tiertest::TestLoop loop;
  tier::PgConn pg(loop.get(), options_for(server));
  pg.start();
  auto div = query(loop, pg, "SELECT 1 / $1::int", {"0"});
  REQUIRE_FALSE(div.ok());
  CHECK(div.error().kind == tier::ErrorKind::reply);
  CHECK(div.error().code == "22012");
  CHECK_THAT(div.error().message, Catch::Contains("division by zero"));
  CHECK(tier::pg_data_error(div.error()));
  CHECK_FALSE(tier::pg_transient(div.error()));

  REQUIRE(query(loop, pg, "INSERT INTO pg_err VALUES (1, 1)").ok());
  auto dup = query(loop, pg, "INSERT INTO pg_err VALUES ($1, 2)", {"1"});
  REQUIRE_FALSE(dup.ok());
  CHECK(dup.error().code == "23505");
  auto bad = query(loop, pg, "SELEC nothing");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().code == "42601");
  auto type = query(loop, pg, "INSERT INTO pg_err VALUES ($1, 3)", {"not-a-number"});
  REQUIRE_FALSE(type.ok());
  CHECK(type.error().code == "22P02");
  auto ok = query(loop, pg, "SELECT count(*) FROM pg_err");
  REQUIRE(ok.ok());
  CHECK(ok->rows[0][0] == "1");
}

TEST_CASE("PgConn: COPY FROM STDIN with more data than a socket buffer", "[pg]") {
  auto& server = tiertest::postgres();
  server.query("DROP TABLE IF EXISTS pg_copy; CREATE TABLE pg_copy(id int, body text)");
  tiertest::TestLoop loop;
  tier::PgConn pg(loop.get(), options_for(server));
  pg.start();
  std::string data;
  for (int i = 0; i < 50000; ++i) {
    data += std::to_string(i);
    data += '\t';
    tier::pg_copy_escape(
        data, std::string("tab\there, newline\nthere, back\\slash ") + std::string(40, 'x'));
    data += '\n';
  }
  data += "50000\t\\N\n";
  REQUIRE(data.size() > 2'000'000);
  auto r = run_job(loop, [&](tier::PgCallback cb) {
    pg.run({{"COPY pg_copy (id, body) FROM STDIN", {}, data}}, std::move(cb));
  });
  REQUIRE(r.ok());
  CHECK(r->at(0).affected == 50001);
  auto rows = server.query("SELECT count(*), count(body), max(id) FROM pg_copy");
  CHECK(rows.at(0) == "50001\t50000\t50000");
  auto one = server.query("SELECT body FROM pg_copy WHERE id = 7");
  CHECK(one.at(0).starts_with("tab\there, newline\nthere, back\\slash x"));

  // Bad COPY data: the error names the problem and the table is unchanged.
  auto bad = run_job(loop, [&](tier::PgCallback cb) {
    pg.run({{"COPY pg_copy (id, body) FROM STDIN", {}, std::string("x\ty\n")}}, std::move(cb));
  });
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().code == "22P02");
  CHECK(server.query("SELECT count(*) FROM pg_copy").at(0) == "50001");
}

TEST_CASE("PgConn: a transaction commits as a whole or rolls back on error", "[pg]") {
  auto& server = tiertest::postgres();
  server.query("DROP TABLE IF EXISTS pg_tx; CREATE TABLE pg_tx(id int PRIMARY KEY, v text)");
  tiertest::TestLoop loop;
  tier::PgConn pg(loop.get(), options_for(server));
  pg.start();
  auto ok = run_job(loop, [&](tier::PgCallback cb) {
    pg.transaction({{"INSERT INTO pg_tx VALUES ($1, $2)", {"1", "a"}, std::nullopt},
                    {"INSERT INTO pg_tx VALUES ($1, $2)", {"2", "b"}, std::nullopt},
                    {"SELECT count(*) FROM pg_tx", {}, std::nullopt}},
                   std::move(cb));
  });
  REQUIRE(ok.ok());
  REQUIRE(ok->size() == 3);
  CHECK(ok->at(2).rows[0][0] == "2");

  SECTION("pipelined: a failing statement undoes the earlier ones") {
    auto bad = run_job(loop, [&](tier::PgCallback cb) {
      pg.transaction({{"INSERT INTO pg_tx VALUES ($1, $2)", {"3", "c"}, std::nullopt},
                      {"INSERT INTO pg_tx VALUES ($1, $2)", {"1", "dup"}, std::nullopt},
                      {"INSERT INTO pg_tx VALUES ($1, $2)", {"4", "d"}, std::nullopt}},
                     std::move(cb));
    });
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error().code == "23505");
  }
  SECTION("with COPY: a failing statement after the COPY undoes it") {
    auto bad = run_job(loop, [&](tier::PgCallback cb) {
      pg.transaction({{"COPY pg_tx FROM STDIN", {}, std::string("3\tc\n4\td\n")},
                      {"INSERT INTO pg_tx VALUES (NULL, 'x')", {}, std::nullopt}},
                     std::move(cb));
    });
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error().code == "23502");
  }
  CHECK(server.query("SELECT string_agg(id::text, ',' ORDER BY id) FROM pg_tx").at(0) == "1,2");
  // The connection is clean again: the next transaction works.
  auto next = run_job(loop, [&](tier::PgCallback cb) {
    pg.transaction({{"INSERT INTO pg_tx VALUES ($1, $2)", {"5", "e"}, std::nullopt}},
                   std::move(cb));
  });
  REQUIRE(next.ok());
  CHECK(server.query("SELECT count(*) FROM pg_tx").at(0) == "3");
}

TEST_CASE("PgConn: a transaction with COPY and no parameters is one query string", "[pg]") {
  auto& server = tiertest::postgres();
  server.query(
      "DROP TABLE IF EXISTS pg_script; CREATE TABLE pg_script(id int PRIMARY KEY, v text)");
  tiertest::TestLoop loop;
  tier::PgConn pg(loop.get(), options_for(server));
  pg.start();
  // Hostile text as an inline literal: quotes, backslashes, a statement separator.
  const std::string hostile = "it's a \\ back'slash\\'; DROP TABLE pg_script; --";
  std::string big;
  for (int i = 100; i < 40100; ++i) {
    big += std::to_string(i) + "\t" + std::string(60, 'b') + "\n";
  }
  auto r = run_job(loop, [&](tier::PgCallback cb) {
    pg.transaction({{"COPY pg_script FROM STDIN", {}, std::string("1\ta\n2\tb\n")},
                    {"SELECT count(*) FROM pg_script", {}, std::nullopt},
                    {"COPY pg_script FROM STDIN", {}, big},
                    {"INSERT INTO pg_script VALUES (3, " + tier::pg_quote_literal(hostile) + ")",
                     {},
                     std::nullopt},
                    {"SELECT current_query()", {}, std::nullopt}},
                   std::move(cb));
  });
  REQUIRE(r.ok());
  REQUIRE(r->size() == 5);
  CHECK(r->at(0).affected == 2);
  CHECK(r->at(1).rows.at(0).at(0) == "2");  // each statement keeps its own result
  CHECK(r->at(2).affected == 40000);
  CHECK(r->at(3).command == "INSERT 0 1");
  // The server got the whole transaction as one query: one round trip.
  const std::string text = r->at(4).rows.at(0).at(0).value_or("");
  CHECK(text.starts_with("BEGIN;"));
  CHECK_THAT(text, Catch::Contains("COPY pg_script FROM STDIN;\nSELECT count(*)"));
  CHECK(text.ends_with("COMMIT"));
  CHECK(server.query("SELECT count(*) FROM pg_script").at(0) == "40003");
  CHECK(server.query("SELECT v FROM pg_script WHERE id = 3").at(0) == hostile);

  // An error in the middle (bad COPY data of the second COPY) undoes everything before it,
  // and the connection is clean for the next job.
  auto bad = run_job(loop, [&](tier::PgCallback cb) {
    pg.transaction({{"COPY pg_script FROM STDIN", {}, std::string("50000\tz\n")},
                    {"COPY pg_script FROM STDIN", {}, std::string("x\ty\n")},
                    {"INSERT INTO pg_script VALUES (50001, 'never')", {}, std::nullopt}},
                   std::move(cb));
  });
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().code == "22P02");
  CHECK(server.query("SELECT count(*) FROM pg_script").at(0) == "40003");
  auto next = query(loop, pg, "SELECT count(*) FROM pg_script");
  REQUIRE(next.ok());
  CHECK(next->rows[0][0] == "40003");
  CHECK_THROWS_AS(tier::pg_quote_literal(std::string("a\0b", 3)), tier::InvalidArgument);
}

TEST_CASE("PgConn: server notices go to on_notice, one line each, never to stderr", "[pg]") {
  auto& server = tiertest::postgres();
  tiertest::TestLoop loop;
  auto o = options_for(server);
  std::vector<std::pair<std::string, std::string>> notices;
  o.on_notice = [&](std::string_view severity, std::string_view message) {
    notices.emplace_back(severity, message);
  };
  tier::PgConn pg(loop.get(), o);
  pg.start();
  REQUIRE(query(loop, pg, "DROP TABLE IF EXISTS pg_no_such_table").ok());
  REQUIRE(query(loop, pg, "DO $$ BEGIN RAISE WARNING 'two%lines', E'\\n'; END $$").ok());
  REQUIRE(notices.size() == 2);
  CHECK(notices[0].first == "NOTICE");
  CHECK(notices[0].second == "table \"pg_no_such_table\" does not exist, skipping");
  CHECK(notices[1].first == "WARNING");
  CHECK(notices[1].second == "two lines");

  // Without a receiver they are dropped (libpq's default would print them to stderr).
  tier::PgConn quiet(loop.get(), options_for(server));
  quiet.start();
  CHECK(query(loop, quiet, "DROP TABLE IF EXISTS pg_no_such_table").ok());
}

TEST_CASE("PgConn: a password in the conninfo is refused; bad conninfo too", "[pg]") {
  tiertest::TestLoop loop;
  tier::PgOptions o;
  o.conninfo = "host=127.0.0.1 port=5432 user=postgres password=hunter2";
  try {
    tier::PgConn pg(loop.get(), o);
    FAIL("a password in the conninfo was accepted");
  } catch (const tier::InvalidArgument& e) {
    CHECK_THAT(e.what(), Catch::Contains("PGPASSWORD"));
    CHECK_THAT(e.what(), !Catch::Contains("hunter2"));
  }
  o.conninfo = "postgresql://postgres:hunter2@127.0.0.1/postgres";
  CHECK_THROWS_AS(tier::PgConn(loop.get(), o), tier::InvalidArgument);
  o.conninfo = "host=127.0.0.1 bogus_key=1";
  CHECK_THROWS_AS(tier::PgConn(loop.get(), o), tier::InvalidArgument);
  CHECK(tier::pg_quote_ident("we\"ird") == "\"we\"\"ird\"");
  CHECK_THROWS_AS(tier::pg_quote_ident(""), tier::InvalidArgument);
  CHECK_THROWS_AS(tier::pg_quote_ident(std::string(64, 'a')), tier::InvalidArgument);
}

TEST_CASE("PgConn: a query past its deadline fails with timeout; the next one works", "[pg]") {
  auto& server = tiertest::postgres();
  tiertest::TestLoop loop;
  tier::PgConn pg(loop.get(), options_for(server));
  pg.start();
  auto start = std::chrono::steady_clock::now();
  auto slow = query(loop, pg, "SELECT pg_sleep(5)", {}, 300ms);
  auto took = std::chrono::steady_clock::now() - start;
  REQUIRE_FALSE(slow.ok());
  CHECK(slow.error().kind == tier::ErrorKind::timeout);
  CHECK(took < 2s);
  CHECK(pg.counters().timeouts == 1);
  auto next = query(loop, pg, "SELECT 7");
  REQUIRE(next.ok());
  CHECK(next->rows[0][0] == "7");
  CHECK(pg.counters().connects == 2);
}

TEST_CASE("PgConn: PostgreSQL stopped, jobs fail within their deadline; reconnects on start",
          "[pg][fault]") {
  tiertest::PgServer server;
  tiertest::TestLoop loop;
  tier::PgConn pg(loop.get(), options_for(server));
  std::vector<tier::LinkState> states;
  pg.on_state([&](tier::LinkState s, const std::string&) { states.push_back(s); });
  pg.start();
  REQUIRE(query(loop, pg, "SELECT 1").ok());

  server.stop();
  auto start = std::chrono::steady_clock::now();
  auto down = query(loop, pg, "SELECT 1", {}, 500ms);
  auto took = std::chrono::steady_clock::now() - start;
  REQUIRE_FALSE(down.ok());
  CHECK(tier::pg_transient(down.error()));
  CHECK(took < 1500ms);
  CHECK_FALSE(down.error().message.empty());
  // While it is down, every job fails by its deadline with a message saying why.
  auto again = query(loop, pg, "SELECT 1", {}, 300ms);
  REQUIRE_FALSE(again.ok());
  CHECK(again.error().kind == tier::ErrorKind::timeout);
  CHECK_THAT(again.error().message, Catch::Contains("not connected"));
  CHECK(pg.state() != tier::LinkState::ready);

  server.start();
  REQUIRE(loop.run_until([&] { return pg.state() == tier::LinkState::ready; }, 10s));
  auto up = query(loop, pg, "SELECT 2");
  REQUIRE(up.ok());
  CHECK(up->rows[0][0] == "2");
  CHECK(std::count(states.begin(), states.end(), tier::LinkState::ready) >= 2);
  CHECK(std::count(states.begin(), states.end(), tier::LinkState::disconnected) >= 1);
}

TEST_CASE("PgConn: closing fails queued jobs with closed", "[pg]") {
  auto& server = tiertest::postgres();
  tiertest::TestLoop loop;
  std::optional<tier::Result<tier::PgResult>> out;
  {
    tier::PgConn pg(loop.get(), options_for(server));
    pg.start();
    pg.query("SELECT 1", {}, [&](tier::Result<tier::PgResult> r) { out.emplace(r); });
    pg.close();
  }
  REQUIRE(out.has_value());
  REQUIRE_FALSE(out->ok());
  CHECK(out->error().kind == tier::ErrorKind::closed);
}

TEST_CASE("PgConn: the destructor never calls back into its owner", "[pg]") {
  auto& server = tiertest::postgres();
  tiertest::TestLoop loop;
  auto calls = std::make_shared<int>(0);
  {
    tier::PgConn pg(loop.get(), options_for(server));
    pg.on_state([calls](tier::LinkState, const std::string&) { ++*calls; });
    pg.start();
    REQUIRE(loop.run_until([&] { return pg.state() == tier::LinkState::ready; }));
    pg.query("SELECT pg_sleep(5)", {}, [calls](tier::Result<tier::PgResult>) { ++*calls; });
    pg.query("SELECT 1", {}, [calls](tier::Result<tier::PgResult>) { ++*calls; });
    *calls = 0;
  }
  CHECK(*calls == 0);
  CHECK(calls.use_count() == 1);  // the callbacks were released, not kept alive
}
