// The reconnect machinery both loop transports share, driven by a fake connection: no
// server is needed to check its deadlines, backoff, resolution and close.

#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <vector>

#include "support/helpers.hpp"
#include "tier/uv/link.hpp"

using namespace std::chrono_literals;

namespace {

// A connection that records what the Reconnector asked of it.
struct FakeConn : std::enable_shared_from_this<FakeConn> {
  explicit FakeConn(uv_loop_t* loop, tier::uv::ReconnectPolicy policy)
      : rc(loop, policy,
           {.hold = [this] { return std::shared_ptr<void>(shared_from_this()); },
            .dial = [this](const std::string& address) { dials.push_back(address); },
            .drop = [this] { ++drops; },
            .tick = [this](auto) { ++ticks; }}) {
    rc.on_state([this](tier::LinkState s, const std::string& why) {
      states.push_back(std::string(tier::to_string(s)) + ": " + why);
    });
  }
  std::vector<std::string> dials;
  std::vector<std::string> states;
  int drops = 0;
  int ticks = 0;
  tier::uv::Reconnector rc;
};

tier::uv::ReconnectPolicy fast() {
  return {.connect_timeout = 50ms, .reconnect_min = 10ms, .reconnect_max = 40ms, .tick = 5ms};
}

}  // namespace

TEST_CASE("a connect that never completes is timed out, dropped and retried with backoff") {
  tiertest::TestLoop loop;
  auto conn = std::make_shared<FakeConn>(loop.get(), fast());
  conn->rc.start("", "fake 127.0.0.1:1");
  REQUIRE(conn->dials == std::vector<std::string>{""});
  CHECK(conn->rc.state() == tier::LinkState::connecting);
  CHECK(conn->states.front() == "connecting: connecting to fake 127.0.0.1:1");

  REQUIRE(loop.run_until([&] { return conn->dials.size() >= 3; }, 5s));
  CHECK(conn->drops >= 2);
  CHECK(conn->rc.last_error() == "connect fake 127.0.0.1:1: timed out after 50 ms");
  CHECK(tier::failure_cause(conn->rc.last_error()) == std::string("timeout"));
  CHECK(conn->rc.disconnects() == 0);  // never ready, so never counted as lost
  CHECK(conn->ticks > 0);

  conn->rc.close();
  const auto dials = conn->dials.size();
  CHECK(conn->states.back() == "closed: closed");
  // After close nothing is dialled again and the loop has nothing left to run.
  CHECK_FALSE(loop.run_until([&] { return conn->dials.size() > dials; }, 200ms));
}

TEST_CASE("ready resets the backoff; a lost ready connection counts and reconnects") {
  tiertest::TestLoop loop;
  auto policy = fast();
  policy.connect_timeout = 10s;
  auto conn = std::make_shared<FakeConn>(loop.get(), policy);
  conn->rc.start("", "fake");
  conn->rc.ready("connected");
  CHECK(conn->rc.state() == tier::LinkState::ready);
  conn->rc.lost("lost fake: server closed the connection");
  CHECK(conn->rc.state() == tier::LinkState::disconnected);
  CHECK(conn->rc.disconnects() == 1);
  CHECK(conn->drops == 1);
  REQUIRE(loop.run_until([&] { return conn->dials.size() == 2; }, 5s));
  CHECK(conn->rc.state() == tier::LinkState::connecting);
  conn->rc.ready("connected");
  CHECK(conn->rc.last_error().empty());
  conn->rc.close();
  conn->rc.lost("after close");  // ignored
  CHECK(conn->rc.state() == tier::LinkState::closed);
  CHECK(conn->drops == 1);
}

TEST_CASE("a name is resolved off the loop before each dial; a failure is the reason") {
  tiertest::TestLoop loop;
  auto conn = std::make_shared<FakeConn>(loop.get(), fast());
  conn->rc.start("localhost", "fake localhost");
  CHECK(conn->dials.empty());  // resolution runs on the thread pool first
  REQUIRE(loop.run_until([&] { return !conn->dials.empty(); }, 5s));
  CHECK((conn->dials[0] == "127.0.0.1" || conn->dials[0] == "::1"));
  conn->rc.close();

  auto bad = std::make_shared<FakeConn>(loop.get(), fast());
  bad->rc.start("no-such-host.invalid", "fake no-such-host.invalid");
  REQUIRE(loop.run_until([&] { return !bad->rc.last_error().empty(); }, 10s));
  CHECK(bad->dials.empty());
  CHECK(std::string(tier::failure_cause(bad->rc.last_error())) == "name not resolved");
  bad->rc.close();
}

TEST_CASE("the owner may be released from inside a state callback") {
  tiertest::TestLoop loop;
  auto conn = std::make_shared<FakeConn>(loop.get(), fast());
  std::weak_ptr<FakeConn> weak = conn;
  bool closed_in_callback = false;
  conn->rc.on_state([&](tier::LinkState s, const std::string&) {
    if (s == tier::LinkState::disconnected) {
      auto self = weak.lock();
      self->rc.close();
      conn.reset();  // the last outside reference goes while the Reconnector runs
      closed_in_callback = true;
    }
  });
  conn->rc.start("", "fake");
  REQUIRE(loop.run_until([&] { return closed_in_callback; }, 5s));
  CHECK(weak.expired());
}
