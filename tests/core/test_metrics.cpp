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
  CHECK_THROWS_AS(r.gauge("x_rejected_total", ""), std::logic_error);
}
