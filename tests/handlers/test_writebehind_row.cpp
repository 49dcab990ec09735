#include <catch2/catch.hpp>

#include <string>

#include "handlers/write_behind/row.hpp"
#include "handlers/write_behind/worker.hpp"

using tierd::wb::Fields;
using tierd::wb::Row;

namespace {

tierd::wb::RowLayout analysis_results() {
  tierd::wb::WriteBehindTable t;
  t.name = "analysis_results";
  t.key_columns = {"project_id", "code_hash"};
  t.columns = {"result"};
  t.version_column = "version";
  return tierd::wb::row_layout(t);
}

Row decode(const tierd::wb::RowLayout& layout, const Fields& fields) {
  Row row;
  tierd::wb::RowScratch scratch;
  const auto error = tierd::wb::decode_row(layout, fields, row, scratch);
  INFO(error.value_or(""));
  REQUIRE_FALSE(error);
  return row;
}

}  // namespace

TEST_CASE("decode_row: a stream entry as the worker writes it", "[writebehind][unit]") {
  const auto layout = analysis_results();
  const Row r = decode(layout, {{"op", "upsert"},
                                {"row", R"({"project_id":"p\u00e9","code_hash":"h","result":7})"},
                                {"version", "3"}});
  CHECK(r.op == tier::WriteOp::upsert);
  CHECK(r.version == 3);
  const auto col = [&](const char* name) {
    return r.values[static_cast<std::size_t>(layout.colidx.at(name))];
  };
  CHECK(col("project_id") == "p\xc3\xa9");
  CHECK(col("result") == "7");
  CHECK(col("version") == "3");

  Row bad;
  tierd::wb::RowScratch scratch;
  CHECK(tierd::wb::decode_row(layout, {{"op", "upsert"}, {"row", R"({"project_id":"p"})"}}, bad,
                              scratch) ==
        "no version: table analysis_results needs field "
        "'version' or column 'version'");
}

TEST_CASE("decode_row: rows with different keys never share a coalescing key",
          "[writebehind][unit]") {
  // Found by tests/fuzz/fuzz_wb_row: with a separator byte between the values,
  // ("a\x1f", "b") and ("a", "\x1fb") had one key, and the worker folded the two rows into
  // one, acknowledging the other without writing it.
  const auto layout = analysis_results();
  const Row a = decode(
      layout,
      {{"op", "upsert"}, {"row", R"({"project_id":"a\u001f","code_hash":"b"})"}, {"version", "1"}});
  const Row b = decode(
      layout,
      {{"op", "upsert"}, {"row", R"({"project_id":"a","code_hash":"\u001fb"})"}, {"version", "2"}});
  CHECK(a.key != b.key);
  const Row c = decode(
      layout,
      {{"op", "delete"}, {"row", R"({"code_hash":"b","project_id":"a\u001f"})"}, {"version", "3"}});
  CHECK(a.key == c.key);
}
