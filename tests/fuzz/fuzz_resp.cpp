// Replies from a Redis server (or whatever answers on its port) through hiredis's reader
// with tier::resp's functions, which build tier::Reply in place: no crash, no leak (ASan),
// and every reply equal to what hiredis's own functions build, copied. The input is fed in
// pieces whose sizes come from its first byte, as a socket would deliver it.

#include <hiredis/hiredis.h>
#include <hiredis/read.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "tier/reply.hpp"
#include "tier/resp/reply_tree.hpp"

namespace {

struct Reader {
  explicit Reader(bool tree) : r(redisReaderCreate()), tree(tree) {
    if (tree) {
      r->fn = tier::detail::reply_tree_functions();
    }
  }
  ~Reader() { redisReaderFree(r); }
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;
  // The next reply: 1 with `out` set, 0 when none is complete yet, -1 on a reader error.
  int next(tier::Reply& out) {
    void* raw = nullptr;
    if (redisReaderGetReply(r, &raw) != REDIS_OK) {
      return -1;
    }
    if (raw == nullptr) {
      return 0;
    }
    out = tree ? std::move(tier::detail::reply_tree_value(raw))
               : tier::Reply::from_hiredis(static_cast<redisReply*>(raw));
    r->fn->freeObject(raw);
    return 1;
  }
  redisReader* r;
  bool tree;
};

// hiredis's own functions calloc a pointer per declared element up front, so "*555559550"
// alone asks for 4 GB (the tree caps what it reserves). Such inputs go through the tree
// alone: the reference cannot build them. Any '*' followed by a large count counts, bulk
// data included: skipping a comparison now and then costs nothing.
bool declares_huge_array(const char* p, std::size_t n) {
  constexpr unsigned long long kMaxElements = 1 << 16;
  for (std::size_t i = 0; i < n; ++i) {
    if (p[i] != '*') {
      continue;
    }
    unsigned long long count = 0;
    for (std::size_t j = i + 1; j < n && p[j] >= '0' && p[j] <= '9' && count <= kMaxElements; ++j) {
      count = count * 10 + static_cast<unsigned>(p[j] - '0');
    }
    if (count > kMaxElements) {
      return true;
    }
  }
  return false;
}

// The tree alone: no crash, no leak, whatever the input.
void tree_only(const char* bytes, std::size_t n, std::size_t piece) {
  Reader tree(true);
  for (std::size_t i = 0; i < n; i += piece) {
    const std::size_t len = i + piece <= n ? piece : n - i;
    if (redisReaderFeed(tree.r, bytes + i, len) != REDIS_OK) {
      return;
    }
    tier::Reply r;
    int got = 0;
    while ((got = tree.next(r)) == 1) {
    }
    if (got < 0) {
      return;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) {
    return 0;
  }
  const std::size_t piece = 1 + data[0] % 64;
  const char* bytes = reinterpret_cast<const char*>(data + 1);
  const std::size_t n = size - 1;
  if (declares_huge_array(bytes, n)) {
    tree_only(bytes, n, piece);
    return 0;
  }
  Reader plain(false);
  Reader tree(true);
  bool plain_ok = true;
  bool tree_ok = true;
  for (std::size_t i = 0; i < n && plain_ok && tree_ok; i += piece) {
    const std::size_t len = i + piece <= n ? piece : n - i;
    if (redisReaderFeed(plain.r, bytes + i, len) != REDIS_OK ||
        redisReaderFeed(tree.r, bytes + i, len) != REDIS_OK) {
      return 0;
    }
    for (;;) {
      tier::Reply a;
      tier::Reply b;
      const int pa = plain.next(a);
      const int pb = tree.next(b);
      plain_ok = pa >= 0;
      tree_ok = pb >= 0;
      if (pa == 1 && pb == 1) {
        if (a != b) {
          std::fprintf(stderr, "fuzz_resp: the tree differs from hiredis's own reply\n");
          std::abort();
        }
        continue;
      }
      // A reply is complete for both at the same byte, or the tree has stopped with an
      // error (it refuses a negative array length other than -1, which hiredis takes).
      if (pb == 1 || (pa == 1 && pb == 0)) {
        std::fprintf(stderr, "fuzz_resp: reply from one reader only (hiredis %d, tree %d)\n", pa,
                     pb);
        std::abort();
      }
      break;
    }
  }
  return 0;
}
