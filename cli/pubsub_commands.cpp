// publish / subscribe: JSON messages on pub/sub channels (DESIGN §5).

#include <signal.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <csignal>
#include <iostream>

#include "context.hpp"
#include "tier/errors.hpp"
#include "tier/pubsub.hpp"

namespace tierctl {
namespace {

volatile std::sig_atomic_t g_interrupted = 0;

void on_interrupt(int) {
  g_interrupted = 1;
}

// Without SA_RESTART, a blocked poll() returns at once on Ctrl-C; the loop below then
// notices the flag and ends normally (exit 0, output flushed).
void catch_interrupts() {
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

void print_message(const tier::Message& m, bool json) {
  if (json) {
    Json out{{"channel", m.channel}};
    if (!m.pattern.empty()) {
      out["pattern"] = m.pattern;
    }
    // Messages are JSON by contract; anything else is shown as the raw text.
    Json body = Json::parse(m.payload, nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded()) {
      out["payload"] = m.payload;
    } else {
      out["message"] = std::move(body);
    }
    Context::print_json(out);
  } else {
    std::cout << m.channel << ' ' << m.payload << '\n';
  }
  std::cout.flush();
}

}  // namespace

void add_pubsub_commands(CLI::App& app, Context& ctx) {
  {
    struct Args {
      std::string channel;
      std::string message;
    };
    auto a = std::make_shared<Args>();
    auto* cmd = app.add_subcommand(
        "publish", "Publish a JSON object on a channel; prints how many subscribers got it");
    cmd->add_option("CHANNEL", a->channel, "Channel, e.g. events:version_promoted")->required();
    cmd->add_option("JSON", a->message, "The message: a JSON object")->required();
    ctx.on_run(cmd, [&ctx, a] {
      Json message = parse_json_arg(a->message, "message");
      long long n = ctx.client().run(tier::publish(a->channel, message));
      if (ctx.options.json) {
        Context::print_json({{"channel", a->channel}, {"receivers", n}});
      } else {
        std::cout << n << '\n';
      }
      return kOk;
    });
  }

  {
    struct Args {
      std::vector<std::string> patterns;
      long long count = 0;
      long long timeout_ms = 0;
    };
    auto a = std::make_shared<Args>();
    auto* cmd = app.add_subcommand(
        "subscribe", "Print messages on channels matching patterns (PSUBSCRIBE) until Ctrl-C");
    cmd->footer(
        "One line per message: 'CHANNEL PAYLOAD', or with --json {\"channel\", \"pattern\", "
        "\"message\"} (\"payload\" holding the text when the message is not JSON).\n\n" +
        std::string(kExitCodesHelp));
    cmd->add_option("PATTERN", a->patterns, "Channel patterns, e.g. 'events:*'")->required();
    cmd->add_option("--count,-n", a->count, "Stop after this many messages")
        ->check(CLI::PositiveNumber);
    cmd->add_option("--timeout-ms", a->timeout_ms,
                    "Stop after this many milliseconds; with --count, fewer messages by then "
                    "is a timeout (exit 3)")
        ->check(CLI::PositiveNumber);
    ctx.on_run(cmd, [&ctx, a] {
      for (const auto& p : a->patterns) {
        if (p.empty()) {
          throw tier::InvalidArgument("pattern is empty");
        }
      }
      auto sub = ctx.client().subscribe({}, a->patterns);
      catch_interrupts();
      using Clock = std::chrono::steady_clock;
      auto deadline = Clock::now() + std::chrono::milliseconds{a->timeout_ms};
      long long received = 0;
      while (g_interrupted == 0 && (a->count == 0 || received < a->count)) {
        // Short waits, so Ctrl-C is seen even if a signal lands between checks.
        auto wait = std::chrono::milliseconds{200};
        if (a->timeout_ms > 0) {
          auto left =
              std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
          if (left.count() <= 0) {
            break;
          }
          wait = std::min(wait, left);
        }
        auto m = sub.next(wait);
        if (m) {
          print_message(*m, ctx.options.json);
          ++received;
        }
      }
      if (g_interrupted == 0 && a->count > 0 && received < a->count) {
        throw tier::TimeoutError("received " + std::to_string(received) + " of " +
                                 std::to_string(a->count) + " messages within " +
                                 std::to_string(a->timeout_ms) + " ms");
      }
      return kOk;
    });
  }
}

}  // namespace tierctl
