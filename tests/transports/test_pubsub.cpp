#include <catch2/catch.hpp>

#include <thread>

#include "support/helpers.hpp"
#include "support/servers.hpp"
#include "tier/pubsub.hpp"

using namespace std::chrono_literals;
using tier::Json;
using tiertest::Runner;

TEST_CASE("publish + blocking subscription with channels and patterns", "[pubsub]") {
  auto& redis = tiertest::redis();
  tier::Client client(redis.url());
  auto sub = client.subscribe({"plain:chan"}, {"events:*"});
  Runner run(GENERATE(Runner::Kind::sync, Runner::Kind::async), redis.url());
  INFO(run.name());
  auto n = run.run(tier::publish("events:version_promoted", Json{{"version", 3}}));
  REQUIRE(n.ok());
  CHECK(*n == 1);
  REQUIRE(run.run(tier::publish("plain:chan", Json{{"a", 1}})).ok());
  REQUIRE(run.run(tier::publish("other:chan", Json{{"a", 1}})).ok());
  auto m1 = sub.next(2s);
  REQUIRE(m1);
  CHECK(m1->pattern == "events:*");
  CHECK(m1->channel == "events:version_promoted");
  CHECK(Json::parse(m1->payload)["version"] == 3);
  auto m2 = sub.next(2s);
  REQUIRE(m2);
  CHECK(m2->pattern.empty());
  CHECK(m2->channel == "plain:chan");
  CHECK_FALSE(sub.next(100ms));  // other:chan was not subscribed
}

TEST_CASE("publish refuses what subscribers could not use", "[pubsub][bad]") {
  auto& redis = tiertest::redis();
  Runner run(GENERATE(Runner::Kind::sync, Runner::Kind::async), redis.url());
  auto arr = run.run(tier::publish("events:x", Json::array({1})));
  REQUIRE_FALSE(arr.ok());
  CHECK_THAT(arr.error().message, Catch::Contains("JSON object"));
  auto big = run.run(tier::publish("events:x", Json{{"s", std::string(2000, 'x')}}, 1000));
  REQUIRE_FALSE(big.ok());
  CHECK_THAT(big.error().message, Catch::Contains("1000-byte limit"));
  CHECK_FALSE(run.run(tier::publish("", Json::object())).ok());
  CHECK_FALSE(run.run(tier::publish("events:\n", Json::object())).ok());
}

TEST_CASE("AsyncSubscriber: confirms subscriptions, delivers, survives a restart",
          "[pubsub][async][fault]") {
  tiertest::RedisServer server;
  tiertest::TestLoop loop;
  tier::SubscriberOptions o;
  o.link.endpoint = tier::RedisEndpoint::parse(server.url());
  o.link.reconnect_min = 20ms;
  o.link.reconnect_max = 100ms;
  o.patterns = {"events:*", "system:*"};
  o.health_interval = 100ms;
  o.health_timeout = 300ms;
  std::vector<std::string> got;
  tier::AsyncSubscriber sub(loop.get(), o, [&](const tier::PushMessage& m) {
    got.push_back(std::string(m.pattern) + "|" + std::string(m.channel) + "|" +
                  std::string(m.payload));
  });
  sub.start();
  REQUIRE(loop.run_until([&] { return sub.state() == tier::LinkState::ready; }));
  server.client().run(tier::publish("events:a", Json{{"n", 1}}));
  server.client().run(tier::publish("nope:a", Json{{"n", 2}}));
  REQUIRE(loop.run_until([&] { return got.size() == 1; }));
  CHECK(got[0] == "events:*|events:a|{\"n\":1}");

  server.stop();
  REQUIRE(loop.run_until([&] { return sub.state() != tier::LinkState::ready; }, 3s));
  server.start();
  REQUIRE(loop.run_until([&] { return sub.state() == tier::LinkState::ready; }, 3s));
  CHECK(sub.counters().disconnects >= 1);
  server.client().run(tier::publish("system:b", Json{{"n", 3}}));
  REQUIRE(loop.run_until([&] { return got.size() == 2; }));
  CHECK(got[1] == "system:*|system:b|{\"n\":3}");

  // A paused server accepts nothing: the health check notices within its timeout.
  server.pause();
  REQUIRE(loop.run_until([&] { return sub.state() != tier::LinkState::ready; }, 2s));
  server.resume();
  REQUIRE(loop.run_until([&] { return sub.state() == tier::LinkState::ready; }, 5s));
}

TEST_CASE("AsyncSubscriber: a backlog longer than the health timeout is not taken for a dead link",
          "[pubsub][async]") {
  tiertest::RedisServer server;
  tiertest::TestLoop loop;
  tier::SubscriberOptions o;
  o.link.endpoint = tier::RedisEndpoint::parse(server.url());
  o.patterns = {"flood:*"};
  o.health_interval = 20ms;
  o.health_timeout = 40ms;
  std::size_t got = 0;
  tier::AsyncSubscriber sub(loop.get(), o, [&](const tier::PushMessage&) { ++got; });
  sub.start();
  REQUIRE(loop.run_until([&] { return sub.state() == tier::LinkState::ready; }));
  // Publish while the loop is not running: the messages pile up in Redis's output buffer
  // for this subscriber, ahead of any health-check confirmation.
  constexpr std::size_t kMessages = 60000;
  std::string payload = "{\"n\":" + std::string(100, '1') + "}";
  tier::Pipeline p;
  for (std::size_t i = 0; i < kMessages; ++i) {
    p.add(tier::raw({"PUBLISH", "flood:x", payload}), [](auto) {});
    if (p.size() == 2000) {
      p.run(server.client());
    }
  }
  p.run(server.client());
  REQUIRE(loop.run_until([&] { return got == kMessages; }, 20s));
  CHECK(sub.counters().disconnects == 0);
  CHECK(sub.state() == tier::LinkState::ready);
}
