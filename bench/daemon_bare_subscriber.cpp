// Dispatch benchmark baseline: the least a C subscriber can do. hiredis async on a libuv
// loop, PSUBSCRIBE events:*, count each pmessage, nothing else.
// Usage: daemon_bare_subscriber HOST PORT N [IDLE_MS]
// Prints "ready" once subscribed, then, after N messages (or IDLE_MS without one, or a
// disconnect): received=K last=EPOCH_SECONDS disconnected=0|1 rss_kb=.. hwm_kb=..

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <uv.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

struct State {
  uv_loop_t* loop = nullptr;
  redisAsyncContext* ctx = nullptr;
  long expected = 0;
  long received = 0;
  double last = 0;       // epoch seconds of the last message
  uint64_t last_ms = 0;  // uv_now of the last message
  uint64_t idle_ms = 3000;
  bool disconnected = false;
  bool done = false;
  uv_timer_t idle{};
};

double epoch_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void finish(State* s) {
  if (s->done) {
    return;
  }
  s->done = true;
  long rss_kb = 0;
  long hwm_kb = 0;
  if (FILE* f = std::fopen("/proc/self/status", "r")) {
    char line[256];
    while (std::fgets(line, sizeof(line), f) != nullptr) {
      std::sscanf(line, "VmRSS: %ld", &rss_kb);
      std::sscanf(line, "VmHWM: %ld", &hwm_kb);
    }
    std::fclose(f);
  }
  std::printf("received=%ld last=%.6f disconnected=%d rss_kb=%ld hwm_kb=%ld\n", s->received,
              s->last, s->disconnected ? 1 : 0, rss_kb, hwm_kb);
  std::fflush(stdout);
  uv_timer_stop(&s->idle);
  uv_close(reinterpret_cast<uv_handle_t*>(&s->idle), nullptr);
  if (!s->disconnected && s->ctx != nullptr) {
    redisAsyncDisconnect(s->ctx);
  }
}

void on_message(redisAsyncContext*, void* r, void* priv) {
  auto* s = static_cast<State*>(priv);
  auto* reply = static_cast<redisReply*>(r);
  if (reply == nullptr || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3) {
    return;
  }
  const redisReply* kind = reply->element[0];
  if (kind->len == 8 && std::memcmp(kind->str, "pmessage", 8) == 0) {
    s->received++;
    s->last_ms = uv_now(s->loop);
    if (s->received == s->expected) {
      s->last = epoch_now();
      finish(s);
    }
  } else if (kind->len == 10 && std::memcmp(kind->str, "psubscribe", 10) == 0) {
    std::printf("ready\n");
    std::fflush(stdout);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s HOST PORT N [IDLE_MS]\n", argv[0]);
    return 2;
  }
  State s;
  s.loop = uv_default_loop();
  s.expected = std::atol(argv[3]);
  if (argc > 4) {
    s.idle_ms = static_cast<uint64_t>(std::atol(argv[4]));
  }
  s.ctx = redisAsyncConnect(argv[1], std::atoi(argv[2]));
  if (s.ctx == nullptr || s.ctx->err) {
    std::fprintf(stderr, "bare: cannot connect\n");
    return 1;
  }
  s.ctx->data = &s;
  redisLibuvAttach(s.ctx, s.loop);
  redisAsyncSetDisconnectCallback(s.ctx, [](const redisAsyncContext* c, int status) {
    auto* st = static_cast<State*>(c->data);
    if (!st->done && status != REDIS_OK) {
      st->disconnected = true;
      st->ctx = nullptr;
      finish(st);
    }
  });
  redisAsyncCommand(s.ctx, on_message, &s, "PSUBSCRIBE events:*");
  uv_timer_init(s.loop, &s.idle);
  s.idle.data = &s;
  // Ends the run when messages stop short of N (a drop); the time of the last one counts,
  // not the idle wait.
  uv_timer_start(
      &s.idle,
      [](uv_timer_t* t) {
        auto* st = static_cast<State*>(t->data);
        if (st->received > 0 && uv_now(st->loop) - st->last_ms > st->idle_ms) {
          st->last = epoch_now() - static_cast<double>(uv_now(st->loop) - st->last_ms) / 1000.0;
          finish(st);
        }
      },
      100, 100);
  uv_run(s.loop, UV_RUN_DEFAULT);
  return 0;
}
