#pragma once
// The `invalidate` handler: deletes cache keys when something changed.
//
// On system:cache_invalidation the message names what to delete, in any combination:
//   {"keys": [...]}        exact keys, UNLINKed in pipelined batches
//   {"patterns": [...]}    key globs, deleted with bounded SCAN+UNLINK steps; each must
//                          start with a literal prefix ending in ':' (never just "*")
//   {"session_id": "..."}  session:{id}:*
//   {"project_id": "..."}  project:{id}:*
// On any channel, configured rules add patterns built from the message:
//   rules: [{on: "events:version_promoted", invalidate: ["project:{project_id}:analysis:*"]}]
// A placeholder's field must be a safe string (non-empty, no control or glob characters):
// a hostile value rejects the message, it never widens a pattern. The namespace prefix
// stands before every key and pattern.

#include "handlers/handler.hpp"

namespace tierd {

Factory invalidate_factory();

}  // namespace tierd
