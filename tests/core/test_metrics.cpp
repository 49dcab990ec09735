// The metrics registry and its Prometheus text format.
#include <catch2/catch.hpp>
#include <stdexcept>
#include <string>

#include "tier/metrics.hpp"

TEST_CASE("the metrics registry renders Prometheus text format 0.0.4") {
  tier::metrics::Registry r;
  auto& rejected = r.counter("x_rejected_total", "Rejected messages");
  auto& a = rejected.with({{"channel", "events:*"}, {"reason", "not_json"}});
  a.inc();
  a.inc(2);
  // The same labels give the same series (stable reference).
  CHECK(&rejected.with({{"channel", "events:*"}, {"reason", "not_json"}}) == &a);
  r.gauge("x_up", "Up").with().set(1);
  auto& h = r.histogram("x_seconds", "Latency", {0.1, 1}).with({{"h", "q\"\\\n"}});
  h.observe(0.05);
  h.observe(0.5);
  h.observe(5);
  const std::string text = r.render();
  INFO(text);
  CHECK(text.find("# HELP x_rejected_total Rejected messages\n# TYPE x_rejected_total counter\n") !=
        std::string::npos);
  CHECK(text.find("x_rejected_total{channel=\"events:*\",reason=\"not_json\"} 3\n") !=
        std::string::npos);
  CHECK(text.find("# TYPE x_up gauge\nx_up 1\n") != std::string::npos);
  CHECK(text.find("x_seconds_bucket{h=\"q\\\"\\\\\\n\",le=\"0.1\"} 1\n") != std::string::npos);
  CHECK(text.find("le=\"1\"} 2\n") != std::string::npos);
  CHECK(text.find("le=\"+Inf\"} 3\n") != std::string::npos);
  CHECK(text.find("x_seconds_count{h=\"q\\\"\\\\\\n\"} 3\n") != std::string::npos);
  CHECK(r.value("x_rejected_total", {{"channel", "events:*"}, {"reason", "not_json"}}) == 3);
  CHECK_THROWS_AS(r.gauge("x_rejected_total", "Rejected messages"), std::logic_error);
}

TEST_CASE("metric declarations are checked: names, help, one declaration per name",
          "[metrics][unit]") {
  tier::metrics::Registry r;
  auto& first = r.counter("tierd_things_total", "Things");
  CHECK(&r.counter("tierd_things_total", "Things") == &first);  // the same family back
  auto message = [](auto&& declare) {
    try {
      declare();
    } catch (const std::logic_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(message([&] { r.counter("tierd_things_total", "Other things"); }) ==
        "metric tierd_things_total declared twice with different help texts");
  CHECK(message([&] { r.gauge("tierd_things_total", "Things"); }) ==
        "metric tierd_things_total declared with two types");
  CHECK(message([&] { r.gauge("tierd_no_help", ""); }) ==
        "metric tierd_no_help declared without help text");
  for (const char* bad : {"", "9lives", "tierd-dash", "tierd things", "tierd_\xc3\xa9"}) {
    CHECK(message([&] { r.counter(bad, "x"); }) ==
          "metric name '" + std::string(bad) + "' is not a valid Prometheus name");
  }
  CHECK(message([&] { r.histogram("ns:sub_seconds", "Colons are allowed"); }) == "no error");
}
