// The write_behind handler in the real tierd binary: SIGKILL mid-flush, again and again,
// then a last instance finishes; SIGTERM during a flush. The PostgreSQL table must hold the
// newest version of every row, each version applied once, and nothing may stay pending.
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <fstream>
#include <sstream>

#include "worker_rig.hpp"

using namespace std::chrono_literals;
using tier::Json;

namespace {

class Tierd {
 public:
  Tierd(const std::string& redis_url, const tiertest::PgServer& pg, const std::string& prefix,
        const std::string& table)
      : dir_("tierd-wb"), path_(dir_.path() + "/tierd.yaml") {
    std::ofstream(path_) << "redis:\n  url: " << redis_url << "\npostgres:\n  conninfo: \""
                         << pg.conninfo() << "\"\nhttp:\n  listen: 127.0.0.1:0\nnamespace: \""
                         << prefix
                         << "\"\nshutdown_timeout_ms: 5000\nhandlers:\n"
                            "  - type: write_behind\n"
                            "    on: [\"system:write_behind_flush\"]\n"
                            "    block_ms: 200\n"
                            "    tables:\n"
                            "      - name: "
                         << table
                         << "\n        key_columns: [id]\n"
                            "        columns: [name, n, doc]\n"
                            "        version_column: version\n"
                            "        max_rows: 200\n"
                            "        max_delay_ms: 20\n"
                            "        claim_idle_ms: 300\n";
    proc_.spawn({TIERD_PATH, "--config", path_}, dir_.path() + "/tierd.log");
  }
  tiertest::Process& proc() { return proc_; }
  std::string consumer() const {
    char host[256] = {0};
    ::gethostname(host, sizeof(host) - 1);
    return std::string(host) + ":" + std::to_string(proc_.pid());
  }
  std::string log() const {
    std::ifstream in(dir_.path() + "/tierd.log");
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }

 private:
  tiertest::TempDir dir_;
  std::string path_;
  mutable tiertest::Process proc_;
};

// 600 keys, 5 versions each, enqueued in a shuffled order: the newest must win.
std::map<std::string, int> enqueue_versions(tier::Client& c, const tier::WriteBehind& wb,
                                            const std::string& table) {
  std::vector<std::pair<int, int>> items;
  for (int k = 0; k < 600; ++k) {
    for (int v = 1; v <= 5; ++v) {
      items.emplace_back(k, v);
    }
  }
  std::uint32_t x = 12345;
  for (std::size_t i = items.size() - 1; i > 0; --i) {
    x = x * 1664525u + 1013904223u;
    std::swap(items[i], items[x % (i + 1)]);
  }
  tier::Pipeline p;
  std::map<std::string, int> newest;
  for (auto [k, v] : items) {
    std::string id = "k" + std::to_string(k);
    p.add(wb.enqueue(table, {{"id", id}, {"name", "v" + std::to_string(v)}, {"n", v}}, v),
          [](tier::Result<std::string> r) { REQUIRE(r.ok()); });
    newest[id] = 5;
  }
  p.run(c);
  return newest;
}

void create_logged_table(const tiertest::PgServer& pg, const std::string& table) {
  wbtest::create_items(pg, table);
  pg.query("DROP TABLE IF EXISTS " + table + "_log; CREATE TABLE " + table +
           "_log(id text, version bigint)");
  pg.query("CREATE OR REPLACE FUNCTION " + table + "_log_f() RETURNS trigger AS $$ BEGIN " +
           "INSERT INTO " + table + "_log VALUES (NEW.id, NEW.version); RETURN NEW; END $$ " +
           "LANGUAGE plpgsql; CREATE TRIGGER " + table + "_t AFTER INSERT OR UPDATE ON " + table +
           " FOR EACH ROW EXECUTE FUNCTION " + table + "_log_f()");
}

void check_final(const tiertest::PgServer& pg, const std::string& table,
                 const std::map<std::string, int>& newest) {
  auto rows = wbtest::rows(pg, table);
  REQUIRE(rows.size() == newest.size());
  std::size_t wrong = 0;
  for (const auto& r : rows) {
    std::string id = r.substr(0, r.find('|'));
    int v = newest.at(id);
    std::string want =
        id + "|v" + std::to_string(v) + "|" + std::to_string(v) + "|" + std::to_string(v);
    if (r != want) {
      ++wrong;
      UNSCOPED_INFO(r << " != " << want);
    }
  }
  CHECK(wrong == 0);
  // No version of a row was applied twice (the trigger logs each insert and update).
  CHECK(pg.query("SELECT count(*) FROM (SELECT id, version FROM " + table +
                 "_log GROUP BY 1, 2 HAVING count(*) > 1) d")
            .at(0) == "0");
}

}  // namespace

TEST_CASE("tierd write_behind: SIGKILL mid-flush several times, then all lands once",
          "[daemon][kill]") {
  auto& redis = tiertest::redis();
  auto& pg = tiertest::postgres();
  tiertest::TestKeys keys(redis.client(), "wb-kill");
  const std::string table = "wb_kill";
  create_logged_table(pg, table);
  tier::WriteBehind wb({.prefix = keys.prefix()});
  auto stream = wb.stream(table);
  auto newest = enqueue_versions(redis.client(), wb, table);
  const long long total = wbtest::xlen(redis.client(), stream);
  REQUIRE(total == 3000);

  // Rows written so far (every insert and update is logged by the trigger).
  auto written = [&] {
    return std::stoll(pg.query("SELECT count(*) FROM " + table + "_log").at(0));
  };
  long long last_written = 0;
  for (int round = 0; round < 4; ++round) {
    Tierd t(redis.url(), pg, keys.prefix(), table);
    // Kill it while it works: once it has written some rows since the last round.
    bool progressed = tiertest::eventually([&] { return written() > last_written + 100; }, 15s);
    INFO(t.log());
    REQUIRE(progressed);
    t.proc().signal(SIGKILL);
    t.proc().stop(SIGKILL, 5000);
    last_written = written();
    if (wbtest::xlen(redis.client(), stream) < 400) {
      break;
    }
  }
  CHECK(wbtest::pending(redis.client(), stream) > 0);  // the killed ones left work behind

  Tierd last(redis.url(), pg, keys.prefix(), table);
  bool drained = tiertest::eventually(
      [&] {
        return wbtest::xlen(redis.client(), stream) == 0 &&
               wbtest::pending(redis.client(), stream) == 0;
      },
      30s);
  INFO(last.log());
  REQUIRE(drained);
  check_final(pg, table, newest);
  CHECK(wbtest::xlen(redis.client(), wb.dead_stream(table)) == 0);
  const int status = last.proc().stop(SIGTERM, 10000);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("tierd write_behind: Redis kills tierd's links (CLIENT KILL) mid-batch, all lands once",
          "[daemon][kill]") {
  auto& redis = tiertest::redis();
  auto& pg = tiertest::postgres();
  tiertest::TestKeys keys(redis.client(), "wb-ckill");
  const std::string table = "wb_ckill";
  create_logged_table(pg, table);
  tier::WriteBehind wb({.prefix = keys.prefix()});
  auto stream = wb.stream(table);
  auto newest = enqueue_versions(redis.client(), wb, table);
  auto written = [&] {
    return std::stoll(pg.query("SELECT count(*) FROM " + table + "_log").at(0));
  };

  Tierd t(redis.url(), pg, keys.prefix(), table);
  tier::Client admin(redis.url());
  int killed = 0;
  long long last_written = 0;
  for (int round = 0; round < 5 && wbtest::xlen(redis.client(), stream) > 300; ++round) {
    // Kill every link (commands, subscriber, stream reader) while rows are being written.
    if (!tiertest::eventually([&] { return written() > last_written + 50; }, 15s)) {
      break;
    }
    const std::string list = admin.run(tier::raw({"CLIENT", "LIST"})).str;
    std::istringstream in(list);
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("id=", 0) == 0 && line.find(" name=tierd") != std::string::npos) {
        const std::string id = line.substr(3, line.find(' ') - 3);
        killed += admin.try_run(tier::raw({"CLIENT", "KILL", "ID", id})).ok() ? 1 : 0;
      }
    }
    last_written = written();
  }
  CHECK(killed >= 3);
  INFO(t.log());
  REQUIRE(t.proc().running());
  REQUIRE(tiertest::eventually(
      [&] {
        return wbtest::xlen(redis.client(), stream) == 0 &&
               wbtest::pending(redis.client(), stream) == 0;
      },
      30s));
  check_final(pg, table, newest);
  CHECK(wbtest::xlen(redis.client(), wb.dead_stream(table)) == 0);
  const int status = t.proc().stop(SIGTERM, 10000);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("tierd write_behind: SIGTERM during a flush writes and acknowledges what it holds",
          "[daemon][term]") {
  auto& redis = tiertest::redis();
  auto& pg = tiertest::postgres();
  tiertest::TestKeys keys(redis.client(), "wb-term");
  const std::string table = "wb_term";
  create_logged_table(pg, table);
  tier::WriteBehind wb({.prefix = keys.prefix()});
  auto stream = wb.stream(table);
  auto newest = enqueue_versions(redis.client(), wb, table);

  Tierd t(redis.url(), pg, keys.prefix(), table);
  REQUIRE(tiertest::eventually([&] { return wbtest::xlen(redis.client(), stream) < 2800; }, 15s));
  const std::string consumer = t.consumer();
  const auto t0 = std::chrono::steady_clock::now();
  const int status = t.proc().stop(SIGTERM, 10000);
  CHECK(std::chrono::steady_clock::now() - t0 < 6s);
  INFO(t.log());
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  // Nothing stays pending in the name of the stopped instance.
  auto summary = redis.client().run(tier::raw({"XPENDING", stream, "tierd"}));
  long long mine = 0;
  if (summary.elements.size() == 4 && summary.elements[3].is_array()) {
    for (auto& c : summary.elements[3].elements) {
      if (c.elements.at(0).str == consumer) {
        mine = std::stoll(c.elements.at(1).str);
      }
    }
  }
  CHECK(mine == 0);
  // A new instance finishes the rest.
  Tierd next(redis.url(), pg, keys.prefix(), table);
  REQUIRE(tiertest::eventually(
      [&] {
        return wbtest::xlen(redis.client(), stream) == 0 &&
               wbtest::pending(redis.client(), stream) == 0;
      },
      30s));
  check_final(pg, table, newest);
}

namespace {

// Exit status and output of `tierd --check-config` on a config with this handler section.
std::pair<int, std::string> check_config(const std::string& handler_yaml) {
  tiertest::TempDir dir("wb-check");
  const std::string path = dir.path() + "/tierd.yaml";
  // --check-config does not connect: any conninfo will do.
  std::ofstream(path) << "postgres:\n  conninfo: \"host=/tmp dbname=app\"\nhandlers:\n"
                      << handler_yaml;
  tiertest::Process p;
  p.spawn({TIERD_PATH, "--check-config", path}, dir.path() + "/out.log");
  int status = p.stop(0, 10000);
  std::ifstream in(dir.path() + "/out.log");
  std::string out((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

const char* kTableYaml =
    "  - type: write_behind\n"
    "    on: [\"system:write_behind_flush\"]\n"
    "    tables:\n"
    "      - name: analysis_results\n"
    "        key_columns: [project_id, code_hash]\n"
    "        columns: [result, updated_at]\n"
    "        version_column: version\n";

}  // namespace

TEST_CASE("tierd --check-config: write_behind sections are validated with their YAML path",
          "[daemon][config]") {
  auto ok = check_config(kTableYaml);
  INFO(ok.second);
  CHECK(ok.first == 0);
  struct Case {
    std::string extra;
    std::string words;
  };
  std::vector<Case> cases{
      {"        colums: [x]\n", "handlers[0].tables[0]"},
      {"        max_rows: 0\n", "handlers[0].tables[0].max_rows"},
      {"        retry_min_ms: 500\n        retry_max_ms: 100\n", "retry_max_ms"},
      {"        claim_idle_ms: -1\n", "claim_idle_ms"},
      {"      - name: analysis_results\n        key_columns: [id]\n", "configured twice"},
      {"      - name: \"bad;name\"\n        key_columns: [id]\n", "only letters"},
      {"      - name: other\n", "key_columns"},
  };
  for (const auto& c : cases) {
    auto r = check_config(std::string(kTableYaml) + c.extra);
    INFO(c.extra << "\n" << r.second);
    CHECK(r.first == 78);
    CHECK_THAT(r.second, Catch::Contains(c.words));
  }
  auto none = check_config("  - type: write_behind\n    on: [\"system:write_behind_flush\"]\n");
  CHECK(none.first == 78);
  CHECK_THAT(none.second, Catch::Contains("handlers[0].tables"));
}

TEST_CASE("tierd write_behind: SIGHUP while rows flow; the new instance takes over",
          "[daemon][reload]") {
  auto& redis = tiertest::redis();
  auto& pg = tiertest::postgres();
  tiertest::TestKeys keys(redis.client(), "wb-hup");
  const std::string table = "wb_hup";
  create_logged_table(pg, table);
  tier::WriteBehind wb({.prefix = keys.prefix()});
  auto stream = wb.stream(table);
  Tierd t(redis.url(), pg, keys.prefix(), table);
  auto newest = enqueue_versions(redis.client(), wb, table);
  REQUIRE(tiertest::eventually([&] { return wbtest::xlen(redis.client(), stream) < 2900; }, 15s));
  t.proc().signal(SIGHUP);
  REQUIRE(tiertest::eventually(
      [&] {
        return wbtest::xlen(redis.client(), stream) == 0 &&
               wbtest::pending(redis.client(), stream) == 0;
      },
      30s));
  INFO(t.log());
  check_final(pg, table, newest);
  CHECK(t.proc().running());
  // Two handler instances consumed the stream: before and after the reload.
  const std::string log = t.log();
  std::size_t starts = 0;
  for (auto p = log.find("write-behind wb_hup: consuming"); p != std::string::npos;
       p = log.find("write-behind wb_hup: consuming", p + 1)) {
    ++starts;
  }
  CHECK(starts == 2);
}

namespace {

std::string log_of(const tiertest::TempDir& dir) {
  std::ifstream in(dir.path() + "/tierd.log");
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Status code and body of GET http://127.0.0.1:<port><path> ("000" when nothing answers).
std::pair<std::string, std::string> http_get(int port, const std::string& path) {
  const std::string cmd =
      "curl -s -m 2 -w '\\n%{http_code}' http://127.0.0.1:" + std::to_string(port) + path +
      " 2>/dev/null";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  std::size_t n;
  while (p != nullptr && (n = std::fread(buf, 1, sizeof buf, p)) > 0) {
    out.append(buf, n);
  }
  if (p != nullptr) {
    ::pclose(p);
  }
  auto nl = out.rfind('\n');
  if (nl == std::string::npos) {
    return {out, ""};
  }
  return {out.substr(nl + 1), out.substr(0, nl)};
}

}  // namespace

TEST_CASE("tierd write_behind: a column typo makes /readyz 503 naming the table", "[daemon]") {
  auto& redis = tiertest::redis();
  auto& pg = tiertest::postgres();
  tiertest::TestKeys keys(redis.client(), "wb-ready");
  const std::string table = "wb_ready";
  wbtest::create_items(pg, table);
  auto run = [&](const std::string& columns) {
    tiertest::TempDir dir("tierd-wb-ready");
    const int port = tiertest::free_port();
    const std::string path = dir.path() + "/tierd.yaml";
    std::ofstream(path) << "redis:\n  url: " << redis.url() << "\npostgres:\n  conninfo: \""
                        << pg.conninfo() << "\"\nhttp:\n  listen: 127.0.0.1:" << port
                        << "\nnamespace: \"" << keys.prefix()
                        << "\"\nhandlers:\n  - type: write_behind\n"
                           "    on: [\"system:write_behind_flush\"]\n    tables:\n"
                           "      - name: "
                        << table << "\n        key_columns: [id]\n        columns: " << columns
                        << "\n";
    tiertest::Process p;
    p.spawn({TIERD_PATH, "--config", path}, dir.path() + "/tierd.log");
    std::pair<std::string, std::string> last;
    // Settled: PostgreSQL is ready (so the start-up check has run) and the answer is final.
    bool settled = tiertest::eventually(
        [&] {
          last = http_get(port, "/readyz");
          return last.second.find("\"postgres\":\"ready\"") != std::string::npos &&
                 (last.first == "200" || log_of(dir).find("nmae") != std::string::npos);
        },
        10s);
    INFO(last.first << " " << last.second);
    CHECK(settled);
    p.stop(SIGTERM, 10000);
    return last;
  };

  auto bad = run("[name, nmae]");
  CHECK(bad.first == "503");
  CHECK_THAT(bad.second, Catch::Contains("\"ready\":false"));
  CHECK_THAT(bad.second, Catch::Contains("\"write_behind_tables_down\":[\"wb_ready\"]"));

  auto good = run("[name, n]");
  CHECK(good.first == "200");
  CHECK_THAT(good.second, Catch::Contains("\"ready\":true"));
  CHECK(good.second.find("write_behind_tables_down") == std::string::npos);
}
