#include "tier/uv/reply_pool.hpp"

#include <hiredis/hiredis.h>
#include <hiredis/read.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

namespace tier::detail {

namespace {

constexpr std::size_t kMaxFree = 256;             ///< free objects kept, per kind
constexpr std::size_t kMaxKeptBytes = 64 * 1024;  ///< larger buffers go back to malloc
constexpr std::size_t kMinString = 256;           ///< a typical message fits a recycled one
constexpr std::size_t kMinArray = 8;              ///< elements; a pmessage has 4

struct Pool {
  std::vector<redisReply*> replies;
  std::vector<std::pair<char*, std::size_t>> strings;
  std::vector<std::pair<redisReply**, std::size_t>> arrays;

  Pool() {
    replies.reserve(kMaxFree);
    strings.reserve(kMaxFree);
    arrays.reserve(kMaxFree);
  }
  ~Pool() {
    for (auto* r : replies) {
      std::free(r);
    }
    for (auto& s : strings) {
      std::free(s.first);
    }
    for (auto& a : arrays) {
      std::free(a.first);
    }
  }
};

Pool& pool() {
  thread_local Pool p;
  return p;
}

redisReply* take_reply(int type) {
  auto& p = pool();
  redisReply* r = nullptr;
  if (!p.replies.empty()) {
    r = p.replies.back();
    p.replies.pop_back();
    std::memset(r, 0, sizeof(redisReply));
  } else {
    r = static_cast<redisReply*>(std::calloc(1, sizeof(redisReply)));
    if (r == nullptr) {
      return nullptr;
    }
  }
  r->type = type;
  return r;
}

void give_reply(redisReply* r) {
  auto& p = pool();
  if (p.replies.size() < kMaxFree) {
    p.replies.push_back(r);
  } else {
    std::free(r);
  }
}

char* take_string(std::size_t need, std::size_t& cap) {
  auto& p = pool();
  if (!p.strings.empty() && p.strings.back().second >= need) {
    auto s = p.strings.back();
    p.strings.pop_back();
    cap = s.second;
    return s.first;
  }
  cap = std::max(need, kMinString);
  return static_cast<char*>(std::malloc(cap));
}

void give_string(char* s, long long cap) {
  auto& p = pool();
  if (s == nullptr) {
    return;
  }
  // cap 0: made by hiredis's own functions, capacity unknown.
  if (cap > 0 && static_cast<std::size_t>(cap) <= kMaxKeptBytes && p.strings.size() < kMaxFree) {
    p.strings.emplace_back(s, static_cast<std::size_t>(cap));
  } else {
    std::free(s);
  }
}

redisReply** take_array(std::size_t n, std::size_t& cap) {
  auto& p = pool();
  if (!p.arrays.empty() && p.arrays.back().second >= n) {
    auto a = p.arrays.back();
    p.arrays.pop_back();
    cap = a.second;
    // hiredis frees a half-built array by its elements: unset ones must be null.
    std::memset(a.first, 0, n * sizeof(redisReply*));
    return a.first;
  }
  cap = std::max(n, kMinArray);
  return static_cast<redisReply**>(std::calloc(cap, sizeof(redisReply*)));
}

void give_array(redisReply** a, long long cap) {
  auto& p = pool();
  if (a == nullptr) {
    return;
  }
  if (cap > 0 && static_cast<std::size_t>(cap) * sizeof(redisReply*) <= kMaxKeptBytes &&
      p.arrays.size() < kMaxFree) {
    p.arrays.emplace_back(a, static_cast<std::size_t>(cap));
  } else {
    std::free(a);
  }
}

void link_to_parent(const redisReadTask* task, redisReply* r) {
  if (task->parent != nullptr) {
    static_cast<redisReply*>(task->parent->obj)->element[task->idx] = r;
  }
}

void release(void* obj) {
  auto* r = static_cast<redisReply*>(obj);
  if (r == nullptr) {
    return;
  }
  switch (r->type) {
    case REDIS_REPLY_ARRAY:
      if (r->element != nullptr) {
        for (std::size_t i = 0; i < r->elements; ++i) {
          release(r->element[i]);
        }
        give_array(r->element, r->integer);
      }
      break;
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
      give_string(r->str, r->integer);
      break;
    default:
      break;
  }
  give_reply(r);
}

void* create_string(const redisReadTask* task, char* str, size_t len) {
  std::size_t cap = 0;
  char* buf = take_string(len + 1, cap);
  if (buf == nullptr) {
    return nullptr;
  }
  redisReply* r = take_reply(task->type);
  if (r == nullptr) {
    give_string(buf, static_cast<long long>(cap));
    return nullptr;
  }
  std::memcpy(buf, str, len);
  buf[len] = '\0';
  r->str = buf;
  r->len = len;
  r->integer = static_cast<long long>(cap);
  link_to_parent(task, r);
  return r;
}

void* create_array(const redisReadTask* task, int elements) {
  redisReply* r = take_reply(REDIS_REPLY_ARRAY);
  if (r == nullptr) {
    return nullptr;
  }
  if (elements > 0) {
    std::size_t cap = 0;
    r->element = take_array(static_cast<std::size_t>(elements), cap);
    if (r->element == nullptr) {
      give_reply(r);
      return nullptr;
    }
    r->integer = static_cast<long long>(cap);
  }
  r->elements = static_cast<std::size_t>(std::max(elements, 0));
  link_to_parent(task, r);
  return r;
}

void* create_integer(const redisReadTask* task, long long value) {
  redisReply* r = take_reply(REDIS_REPLY_INTEGER);
  if (r == nullptr) {
    return nullptr;
  }
  r->integer = value;
  link_to_parent(task, r);
  return r;
}

void* create_nil(const redisReadTask* task) {
  redisReply* r = take_reply(REDIS_REPLY_NIL);
  if (r == nullptr) {
    return nullptr;
  }
  link_to_parent(task, r);
  return r;
}

redisReplyObjectFunctions kFunctions{create_string, create_array, create_integer, create_nil,
                                     release};

}  // namespace

redisReplyObjectFunctions* pooled_reply_functions() {
  return &kFunctions;
}

ReplyPoolSize reply_pool_size() {
  auto& p = pool();
  return {p.replies.size(), p.strings.size(), p.arrays.size()};
}

}  // namespace tier::detail
