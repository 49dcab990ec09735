// The dispatcher's message path: every message validated in one pass, the DOM built only
// for handlers that read it, routes cached per channel and rebuilt on reload, and the
// `count` handler (tierd_events_counted_total) against the harness's real Redis.
#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "daemon/dispatcher.hpp"
#include "daemon_rig.hpp"
#include "support/helpers.hpp"
#include "tier/metrics.hpp"

namespace {

using namespace std::chrono_literals;
using tierd_test::Daemon;
using tierd_test::quiet_logger;

const std::string kCount = R"(
handlers:
  - type: count
    name: tap
    on: ["events:*", "notifications:user:*"]
)";

/// What a handler saw of each event.
struct Seen {
  std::vector<std::string> channels;
  std::vector<bool> body_parsed;
  std::vector<std::string> ids;
  std::vector<std::string> bodies;
};

class Recorder final : public tierd::Handler {
 public:
  Recorder(Seen& seen, bool needs_body) : seen_(seen), needs_body_(needs_body) {}
  void handle(std::shared_ptr<const tierd::Event> e, tierd::Done done) override {
    seen_.channels.push_back(e->channel);
    seen_.body_parsed.push_back(e->body.is_object());
    seen_.ids.push_back(e->id.value_or("<none>"));
    seen_.bodies.push_back(e->body.dump());
    done(tierd::HandlerResult::ok());
  }
  bool needs_body() const override { return needs_body_; }

 private:
  Seen& seen_;
  bool needs_body_;
};

tierd::ResolvedHandler recorder(const std::string& name, std::vector<std::string> on, Seen& seen,
                                bool needs_body) {
  tierd::HandlerConfig h;
  h.type = "recorder";
  h.name = name;
  h.on = std::move(on);
  return {h, [&seen, needs_body](tierd::Context&) {
            return std::make_unique<Recorder>(seen, needs_body);
          }};
}

struct Rig {
  Rig() {
    env.loop = loop.get();
    env.metrics = &metrics;
    env.log = log.get();
    env.instance_id = "test:1";
    config.max_message_bytes = 4096;
    dispatcher = std::make_unique<tierd::Dispatcher>(env);
  }
  double metric(const std::string& name, const tier::metrics::Labels& labels) {
    return metrics.value(name, labels);
  }

  tiertest::TestLoop loop;
  tier::metrics::Registry metrics;
  std::shared_ptr<spdlog::logger> log = quiet_logger();
  tierd::DispatcherEnv env;
  tierd::Config config;
  tierd::ResolvedHandlers handlers;
  std::unique_ptr<tierd::Dispatcher> dispatcher;
};

}  // namespace

TEST_CASE("the body is parsed only for handlers that read it, and is shared when one does") {
  Rig rig;
  Seen lazy;
  Seen eager;
  rig.handlers.push_back(recorder("lazy", {"events:*"}, lazy, false));
  rig.handlers.push_back(recorder("eager", {"events:b"}, eager, true));
  rig.dispatcher->install(rig.config, rig.handlers);

  rig.dispatcher->on_message("events:*", "events:a", R"({"id":"x\u00e9\"1","n":[1,2]})");
  rig.dispatcher->on_message("events:*", "events:b", R"({"id":"plain","n":3})");
  rig.dispatcher->on_message("events:*", "events:a", R"({"n":4})");

  REQUIRE(lazy.channels == std::vector<std::string>{"events:a", "events:b", "events:a"});
  // events:a goes to the lazy handler alone: no DOM; events:b also to the eager one.
  CHECK(lazy.body_parsed == std::vector<bool>{false, true, false});
  CHECK(lazy.bodies[0] == "null");
  CHECK(lazy.bodies[1] == R"({"id":"plain","n":3})");
  // The envelope id comes from the validator, escapes decoded, body or not.
  CHECK(lazy.ids == std::vector<std::string>{"x\xc3\xa9\"1", "plain", "<none>"});
  REQUIRE(eager.channels == std::vector<std::string>{"events:b"});
  CHECK(eager.body_parsed == std::vector<bool>{true});
  CHECK(rig.metric("tierd_messages_dispatched_total", {{"channel_pattern", "events:*"}}) == 3);
}

TEST_CASE("a lazy route still validates every message and counts rejections by reason") {
  Rig rig;
  Seen lazy;
  rig.handlers.push_back(recorder("lazy", {"events:*"}, lazy, false));
  rig.dispatcher->install(rig.config, rig.handlers);
  const std::vector<std::pair<std::string, std::string>> corpus{
      {"{\"a\":1,}", "not_json"},
      {"{\"a\":\"\\uD800\"}", "not_json"},
      {"{\"a\":1e999}", "not_json"},
      {"{\"a\":1}{", "not_json"},
      {"[1]", "not_object"},
      {"{\"a\":\"\xc0\xaf\"}", "invalid_utf8"},
      {"{\"a\":" + std::string(70, '[') + std::string(70, ']') + "}", "too_deep"},
      {"{\"id\":[1]}", "wrong_type"},
      {std::string(5000, ' '), "too_large"},
  };
  for (const auto& [payload, reason] : corpus) {
    rig.dispatcher->on_message("events:*", "events:x", payload);
  }
  CHECK(lazy.channels.empty());
  for (const char* reason :
       {"not_json", "not_object", "invalid_utf8", "too_deep", "wrong_type", "too_large"}) {
    std::size_t want = 0;
    for (const auto& c : corpus) {
      want += c.second == reason ? 1 : 0;
    }
    INFO(reason);
    CHECK(rig.metric("tierd_messages_rejected_total",
                     {{"channel_pattern", "events:*"}, {"reason", reason}}) ==
          static_cast<double>(want));
  }
  CHECK(rig.metric("tierd_messages_received_total", {{"channel_pattern", "events:*"}}) ==
        static_cast<double>(corpus.size()));
  CHECK(rig.metric("tierd_messages_dispatched_total", {{"channel_pattern", "events:*"}}) == 0);
}

TEST_CASE("validate: when_parsed checks only what a handler parses; rejections still count") {
  Rig rig;
  rig.config.validate = tierd::Config::Validate::when_parsed;
  Seen lazy;
  Seen eager;
  rig.handlers.push_back(recorder("lazy", {"events:a"}, lazy, false));
  rig.handlers.push_back(recorder("eager", {"events:b"}, eager, true));
  rig.dispatcher->install(rig.config, rig.handlers);
  const std::string bad = "{\"a\":1,}";
  rig.dispatcher->on_message("events:*", "events:a", bad);  // unchecked: delivered as is
  rig.dispatcher->on_message("events:*", "events:a", R"({"id":"i1"})");
  rig.dispatcher->on_message("events:*", "events:b", bad);  // parsed: checked, rejected
  rig.dispatcher->on_message("events:*", "events:b", "[1]");
  rig.dispatcher->on_message("events:*", "events:b", R"({"id":"i2","n":1})");
  rig.dispatcher->on_message("events:*", "events:z", bad);  // no handler: unrouted
  rig.dispatcher->on_message("events:*", "events:a", std::string(5000, ' '));  // too large

  CHECK(lazy.channels == std::vector<std::string>{"events:a", "events:a"});
  CHECK(lazy.ids == std::vector<std::string>{"<none>", "<none>"});  // no id without a check
  CHECK(lazy.body_parsed == std::vector<bool>{false, false});
  REQUIRE(eager.channels == std::vector<std::string>{"events:b"});
  CHECK(eager.ids == std::vector<std::string>{"i2"});
  const tier::metrics::Labels p{{"channel_pattern", "events:*"}};
  auto rejected = [&](const char* reason) {
    return rig.metric("tierd_messages_rejected_total",
                      {{"channel_pattern", "events:*"}, {"reason", reason}});
  };
  CHECK(rejected("not_json") == 1);
  CHECK(rejected("not_object") == 1);
  CHECK(rejected("too_large") == 1);
  CHECK(rig.metric("tierd_messages_received_total", p) == 7);
  CHECK(rig.metric("tierd_messages_dispatched_total", p) == 3);
  CHECK(rig.metric("tierd_messages_unrouted_total", p) == 1);
}

TEST_CASE("routes are cached per channel and rebuilt by a reload") {
  Rig rig;
  Seen first;
  rig.handlers.push_back(recorder("h", {"events:a", "events:c?"}, first, false));
  rig.dispatcher->install(rig.config, rig.handlers);
  for (int i = 0; i < 3; ++i) {
    rig.dispatcher->on_message("events:*", "events:a", "{}");
    rig.dispatcher->on_message("events:*", "events:b", "{}");
    rig.dispatcher->on_message("events:*", "events:c1", "{}");
  }
  CHECK(first.channels.size() == 6);
  CHECK(rig.metric("tierd_messages_unrouted_total", {{"channel_pattern", "events:*"}}) == 3);

  // Many distinct channels: the cache starts over rather than grow, and routing holds.
  for (int i = 0; i < 10000; ++i) {
    rig.dispatcher->on_message("events:*", "events:z" + std::to_string(i), "{}");
  }
  rig.dispatcher->on_message("events:*", "events:c2", "{}");
  CHECK(first.channels.size() == 7);

  Seen second;
  rig.handlers = {recorder("h", {"events:b"}, second, false)};
  rig.dispatcher->install(rig.config, rig.handlers);
  rig.dispatcher->on_message("events:*", "events:a", "{}");
  rig.dispatcher->on_message("events:*", "events:b", "{}");
  CHECK(first.channels.size() == 7);  // the old route to events:a is gone
  CHECK(second.channels == std::vector<std::string>{"events:b"});
  rig.loop.run_until([] { return false; }, 50ms);  // the old generation drains
}

TEST_CASE("count meters events by handler and pattern through the real subscriber") {
  Daemon d(kCount, "count_handler");
  auto counted = [&](const std::string& pattern) {
    return d.metric("tierd_events_counted_total",
                    {{"handler", "tap"}, {"channel_pattern", pattern}});
  };
  for (int i = 0; i < 50; ++i) {
    d.publish("events:e" + std::to_string(i % 3), R"({"id":"e-)" + std::to_string(i) + R"("})");
  }
  d.publish("notifications:user:7", R"({"n":1})");
  d.publish("notifications:other", R"({"n":1})");  // subscribed, but not this handler's
  d.publish("events:e1", "{\"id\":\"bad\"");       // refused before any handler
  d.publish("events:e1", "{\"a\":\"\xff\"}");
  d.publish("system:cache_invalidation", R"({"keys":["k"]})");  // another handler's channel
  REQUIRE(d.until([&] {
    return counted("events:*") == 50 && counted("notifications:*") == 1 &&
           d.metric("tierd_messages_rejected_total",
                    {{"channel_pattern", "events:*"}, {"reason", "invalid_utf8"}}) == 1;
  }));
  CHECK(d.metric("tierd_messages_rejected_total",
                 {{"channel_pattern", "events:*"}, {"reason", "not_json"}}) == 1);
  CHECK(d.metric("tierd_messages_unrouted_total", {{"channel_pattern", "notifications:*"}}) == 1);
  CHECK(d.metric("tierd_handler_events_total", {{"handler", "tap"}, {"result", "ok"}}) == 51);
  const std::string text = d.app->metrics().render();
  CHECK(
      text.find("tierd_events_counted_total{handler=\"tap\",channel_pattern=\"events:*\"} 50\n") !=
      std::string::npos);
}

TEST_CASE("message checks refuse what must not be parsed") {
  using tierd::check_message;
  CHECK_FALSE(check_message(R"({"a":1})", 100));
  CHECK(check_message(std::string(101, ' '), 100) == std::optional<std::string>("too_large"));
  CHECK(check_message("{\"a\":\"\xff\"}", 100) == std::optional<std::string>("invalid_utf8"));
  CHECK(check_message(std::string(65, '[') + std::string(65, ']'), 1000) ==
        std::optional<std::string>("too_deep"));
  // 64 deep is allowed; that one is refused only for not being an object.
  CHECK(check_message(std::string(64, '[') + std::string(64, ']'), 1000) ==
        std::optional<std::string>("not_object"));
  CHECK_FALSE(check_message("{\"a\":" + std::string(63, '[') + std::string(63, ']') + "}", 1000));
  // Brackets inside strings do not count as nesting.
  CHECK_FALSE(check_message("{\"a\":\"" + std::string(200, '[') + "\"}", 1000));
  // The whole message is checked in one pass: grammar, escapes, numbers, trailing bytes.
  CHECK(check_message("{\"a\":1,}", 100) == std::optional<std::string>("not_json"));
  CHECK(check_message("{\"a\":\"\\uD800\"}", 100) == std::optional<std::string>("not_json"));
  CHECK(check_message("{\"a\":1e400}", 100) == std::optional<std::string>("not_json"));
  CHECK(check_message("{} {}", 100) == std::optional<std::string>("not_json"));
  CHECK(check_message("\"s\"", 100) == std::optional<std::string>("not_object"));
}
