// Dispatch benchmark publisher: PUBLISHes N JSON messages of about 200 bytes to
// events:bench as fast as one pipelined hiredis connection allows.
// Usage: daemon_publisher HOST PORT N [CHANNEL]
// Prints one line: published=N seconds=S rate=R receivers=SUM (SUM = total subscribers that
// Redis reported delivering to; N per subscriber when nobody was dropped).

#include <hiredis/hiredis.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

// ~200 bytes, shaped like a real event (id for de-duplication, ts, a few fields).
std::string payload(long seq) {
  char buf[256];
  int n =
      std::snprintf(buf, sizeof(buf),
                    "{\"id\":\"bench-%09ld\",\"ts\":1764300000.123,\"project_id\":\"proj-0042\","
                    "\"version\":\"v2.14.%ld\",\"user_id\":\"user-%06ld\",\"status\":"
                    "\"promoted\",\"score\":0.9731,\"tags\":[\"bench\",\"dispatch\"],"
                    "\"note\":\"xxxxxxxxxxxxxxxxxxxx\"}",
                    seq, seq % 100, seq % 1000);
  return std::string(buf, static_cast<std::size_t>(n));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s HOST PORT N [CHANNEL]\n", argv[0]);
    return 2;
  }
  const char* host = argv[1];
  int port = std::atoi(argv[2]);
  long n = std::atol(argv[3]);
  std::string channel = argc > 4 ? argv[4] : "events:bench";
  redisContext* c = redisConnect(host, port);
  if (c == nullptr || c->err) {
    std::fprintf(stderr, "publisher: cannot connect: %s\n", c ? c->errstr : "oom");
    return 1;
  }
  constexpr long kBatch = 512;  // replies read per round trip
  long long receivers = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (long sent = 0; sent < n;) {
    long batch = std::min(kBatch, n - sent);
    for (long i = 0; i < batch; ++i) {
      std::string p = payload(sent + i);
      redisAppendCommand(c, "PUBLISH %b %b", channel.data(), channel.size(), p.data(), p.size());
    }
    for (long i = 0; i < batch; ++i) {
      void* r = nullptr;
      if (redisGetReply(c, &r) != REDIS_OK || r == nullptr) {
        std::fprintf(stderr, "publisher: %s\n", c->errstr);
        return 1;
      }
      auto* reply = static_cast<redisReply*>(r);
      if (reply->type == REDIS_REPLY_INTEGER) {
        receivers += reply->integer;
      }
      freeReplyObject(reply);
    }
    sent += batch;
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("published=%ld seconds=%.3f rate=%.0f receivers=%lld\n", n, s, n / s, receivers);
  redisFree(c);
  return 0;
}
