#pragma once
// hiredis reply-object functions that recycle what they allocate. The default ones make
// every pub/sub message cost ten heap round trips (the array, four strings, their buffers,
// the element vector), as much as everything tierd itself does with it; a subscriber reads
// replies one at a time, so a few freed objects kept for the next reply serve a flood.
//
// Every object is still a plain malloc'd redisReply: one freed by hiredis's own
// freeReplyObject is simply freed, and one made by the default functions and freed here is
// recycled or freed as well. String and array replies carry their buffer's capacity in
// `integer` (unused for those types). The pools are per thread and bounded.

#include <cstddef>

struct redisReplyObjectFunctions;

namespace tier::detail {

/// The functions to put in a redisReader (reader->fn) before it reads anything.
redisReplyObjectFunctions* pooled_reply_functions();

/// Free objects kept by this thread's pool (tests).
struct ReplyPoolSize {
  std::size_t replies = 0;
  std::size_t strings = 0;
  std::size_t arrays = 0;
};
ReplyPoolSize reply_pool_size();

}  // namespace tier::detail
