#pragma once
// hiredis reply-object functions that parse a command connection's replies straight into
// tier::Reply. With hiredis's default functions every reply is built twice: hiredis's own
// tree (an object and a buffer per string, a vector per array), then its copy into a Reply
// that the caller can keep. A 1000-entry stream read was 18 heap round trips per entry
// before the worker saw it; here it is the Reply's own few.
//
// Each node is written in place: an array's children are appended to its elements as they
// arrive. Only the root is a separate object, headed by a redisReply
// whose type (and str, for a status or error) hiredis itself reads for a reply no command
// waits for. Not for a subscribed connection: hiredis walks pub/sub replies as redisReply.

struct redisReplyObjectFunctions;

namespace tier {
struct Reply;
}

namespace tier::detail {

/// The functions to put in a redisReader (reader->fn) before it reads anything.
redisReplyObjectFunctions* reply_tree_functions();

/// The Reply inside a root object those functions made (what hiredis hands the callback).
Reply& reply_tree_value(void* root);

}  // namespace tier::detail
