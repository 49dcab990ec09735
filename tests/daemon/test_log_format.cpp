// JSON log lines: every string escaped whatever the bytes (a property over all single bytes
// and random strings, checked by nlohmann's strict parser), the formatter's fields, and the
// real binary logging JSON lines with TIERD_LOG_FORMAT=json.

#include <catch2/catch.hpp>

#include <random>
#include <sstream>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "daemon/log_format.hpp"
#include "support/helpers.hpp"
#include "support/servers.hpp"
#include "tierd_process.hpp"

namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

std::string escaped(std::string_view s) {
  std::string out;
  tierd::append_json_string(out, s);
  return out;
}

}  // namespace

TEST_CASE("JSON log strings: escaped so that any bytes give one valid JSON string") {
  CHECK(escaped("plain") == "\"plain\"");
  CHECK(escaped("a\"b\\c") == "\"a\\\"b\\\\c\"");
  CHECK(escaped("line\nbreak\r\t") == "\"line\\nbreak\\r\\t\"");
  CHECK(escaped(std::string("nul\0x", 5)) == "\"nul\\u0000x\"");
  CHECK(escaped("\x1b[31m") == "\"\\u001b[31m\"");
  CHECK(escaped("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x99\x82") ==
        "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x99\x82\"");                    // UTF-8 kept
  CHECK(escaped("\xff\xc3") == "\"\\ufffd\\ufffd\"");                        // invalid bytes
  CHECK(escaped("\xed\xa0\x80") == "\"\\ufffd\\ufffd\\ufffd\"");             // a surrogate
  CHECK(escaped("\xc0\xaf") == "\"\\ufffd\\ufffd\"");                        // overlong
  CHECK(escaped("\xf4\x90\x80\x80") == "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");  // past U+10FFFF

  // Every single byte, and random byte strings: the output parses, and where the input was
  // valid UTF-8 it round-trips exactly.
  for (int b = 0; b < 256; ++b) {
    const std::string in(1, static_cast<char>(b));
    const auto j = Json::parse(escaped(in), nullptr, false);
    REQUIRE_FALSE(j.is_discarded());
    if (b < 0x80) {
      CHECK(j.get<std::string>() == in);
    }
  }
  std::mt19937 rng(7);
  for (int i = 0; i < 20000; ++i) {
    std::string in(static_cast<std::size_t>(rng() % 24), '\0');
    for (auto& c : in) {
      c = static_cast<char>(rng() % 4 == 0 ? rng() % 256 : 0x20 + rng() % 0x60);
    }
    const auto j = Json::parse(escaped(in), nullptr, false);
    INFO(Json(escaped(in)).dump());
    REQUIRE_FALSE(j.is_discarded());
    bool utf8 = true;  // nlohmann refuses to dump invalid UTF-8
    try {
      (void)Json(in).dump();
    } catch (const Json::exception&) {
      utf8 = false;
    }
    if (utf8) {
      CHECK(j.get<std::string>() == in);
    }
  }
}

TEST_CASE("JSON log lines: ts, level, logger, msg and pid, one object per line") {
  std::ostringstream out;
  auto logger = std::make_shared<spdlog::logger>(
      "tierd", std::make_shared<spdlog::sinks::ostream_sink_mt>(out));
  tierd::apply_log_format(*logger, tierd::LogFormat::json);
  logger->warn("handler {} failed: {}", "inv", "bad \"key\"\n\x01");
  logger->info("second");
  std::istringstream lines(out.str());
  std::string line;
  std::vector<Json> got;
  while (std::getline(lines, line)) {
    got.push_back(Json::parse(line));
  }
  REQUIRE(got.size() == 2);
  CHECK(got[0]["level"] == "warning");
  CHECK(got[0]["logger"] == "tierd");
  CHECK(got[0]["msg"] == "handler inv failed: bad \"key\"\n\x01");
  CHECK(got[0]["pid"] == ::getpid());
  const std::string ts = got[0]["ts"];
  CHECK(ts.size() == 24);  // 2026-11-29T13:20:01.123Z
  CHECK(ts[10] == 'T');
  CHECK(ts.back() == 'Z');
  CHECK(got[1]["msg"] == "second");
  // Back to text.
  tierd::apply_log_format(*logger, tierd::LogFormat::text);
  out.str("");
  logger->info("plain");
  CHECK(out.str().find("info plain") != std::string::npos);
  CHECK(out.str().front() != '{');
}

TEST_CASE("tierd with TIERD_LOG_FORMAT=json writes only JSON lines") {
  tier::Client& c = tiertest::redis().client();
  tiertest::TestKeys keys(c, "jsonlog");
  tiertest::Tierd t(tiertest::redis().url(), keys.prefix(), {{"TIERD_LOG_FORMAT", "json"}});
  REQUIRE(tiertest::eventually([&] { return t.ready(); }, 5s));
  // A refused invalidation is logged with (an escaped excerpt of) the hostile text it carried.
  c.run(tier::raw(
      {"PUBLISH", "system:cache_invalidation", "{\"patterns\":[\"\\u0000\\\"}{\\n\\u001b\"]}"}));
  REQUIRE(tiertest::eventually(
      [&] { return t.log().find("control character") != std::string::npos; }, 5s));
  const int status = t.proc().stop(SIGTERM, 5000);
  CHECK(WEXITSTATUS(status) == 0);
  std::istringstream lines(t.log());
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    INFO(line);
    const auto j = Json::parse(line, nullptr, false);
    REQUIRE(j.is_object());
    for (const char* f : {"ts", "level", "logger", "msg"}) {
      CHECK(j.contains(f));
    }
    ++n;
  }
  CHECK(n >= 3);  // start, the refused message, stop
}
