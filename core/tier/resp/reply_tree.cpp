#include "tier/resp/reply_tree.hpp"

#include <hiredis/hiredis.h>
#include <hiredis/read.h>

#include <algorithm>
#include <cstddef>
#include <new>

#include "tier/reply.hpp"

namespace tier::detail {

namespace {

struct Root {
  redisReply header{};  // first member: hiredis may read the root as a redisReply
  Reply value;
};

// An array's elements are reserved up to this many when its header arrives; past it they
// grow as they come. The count is the server's word: "*2000000000" must cost nothing
// before the bytes arrive.
constexpr std::size_t kReserveMax = 4096;

// The Reply a task's object is written to: a new root, or the next element of its parent.
// hiredis reads depth first, so a parent never grows while a child array of it is still
// being filled, and the pointer hiredis keeps to that child stays valid. `obj` gets what
// hiredis keeps as the task's object (a Root* for the root, a Reply* below it).
Reply* place(const redisReadTask* task, void** obj) {
  if (task->parent == nullptr) {
    auto* root = new Root();
    *obj = root;
    return &root->value;
  }
  void* parent_obj = task->parent->obj;
  Reply* parent = task->parent->parent == nullptr ? &static_cast<Root*>(parent_obj)->value
                                                  : static_cast<Reply*>(parent_obj);
  if (task->idx < 0 || static_cast<std::size_t>(task->idx) != parent->elements.size()) {
    return nullptr;  // elements come in order, each once
  }
  Reply* r = &parent->elements.emplace_back();
  *obj = r;
  return r;
}

int hiredis_type(Reply::Type t) {
  switch (t) {
    case Reply::Type::string:
      return REDIS_REPLY_STRING;
    case Reply::Type::status:
      return REDIS_REPLY_STATUS;
    case Reply::Type::error:
      return REDIS_REPLY_ERROR;
    case Reply::Type::integer:
      return REDIS_REPLY_INTEGER;
    case Reply::Type::array:
      return REDIS_REPLY_ARRAY;
    case Reply::Type::nil:
      break;
  }
  return REDIS_REPLY_NIL;
}

// Places the task's Reply, lets `fill` write it, and heads a root with what hiredis may
// read of it. hiredis treats NULL as out of memory: the connection ends with an error,
// nothing throws through its C frames.
template <class Fill>
void* create(const redisReadTask* task, Fill fill) noexcept {
  try {
    void* obj = nullptr;
    Reply* r = place(task, &obj);
    if (r == nullptr) {
      return nullptr;
    }
    fill(*r);
    if (task->parent == nullptr) {
      redisReply& header = static_cast<Root*>(obj)->header;
      header.type = hiredis_type(r->type);
      header.integer = r->integer;
      header.str = r->str.data();
      header.len = r->str.size();
    }
    return obj;
  } catch (const std::exception&) {  // bad_alloc, length_error
    return nullptr;
  }
}

void* create_string(const redisReadTask* task, char* str, size_t len) noexcept {
  return create(task, [&](Reply& r) {
    r.type = task->type == REDIS_REPLY_ERROR    ? Reply::Type::error
             : task->type == REDIS_REPLY_STATUS ? Reply::Type::status
                                                : Reply::Type::string;
    r.str.assign(str, len);
  });
}

void* create_array(const redisReadTask* task, int elements) noexcept {
  if (elements < 0) {
    return nullptr;
  }
  return create(task, [&](Reply& r) {
    r.type = Reply::Type::array;
    r.elements.reserve(std::min(static_cast<std::size_t>(elements), kReserveMax));
  });
}

void* create_integer(const redisReadTask* task, long long value) noexcept {
  return create(task, [&](Reply& r) {
    r.type = Reply::Type::integer;
    r.integer = value;
  });
}

void* create_nil(const redisReadTask* task) noexcept {
  return create(task, [](Reply& r) { r.type = Reply::Type::nil; });
}

// hiredis frees only roots (the reply it handed out, or a partial one after an error).
void free_object(void* obj) noexcept {
  delete static_cast<Root*>(obj);
}

redisReplyObjectFunctions kFunctions{create_string, create_array, create_integer, create_nil,
                                     free_object};

}  // namespace

redisReplyObjectFunctions* reply_tree_functions() {
  return &kFunctions;
}

Reply& reply_tree_value(void* root) {
  return static_cast<Root*>(root)->value;
}

}  // namespace tier::detail
