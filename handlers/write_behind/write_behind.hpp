#pragma once
// The `write_behind` handler: persists the rows apps append to writebehind:{table} streams
// into PostgreSQL (wb::WriteBehindWorker does the work: consumer group `tierd`, batches,
// coalescing, version-guarded upserts and deletes, dead letters). It needs `postgres.conninfo`.
//
// Events: a message on system:write_behind_flush writes what is buffered now, for every
// table or for {"table": "name"}. stop() (SIGTERM, reload) writes the batch in flight and
// acknowledges it within stop_timeout_ms; the rest stays pending in Redis.

#include "handlers/handler.hpp"

namespace tierd {

Factory write_behind_factory();

}  // namespace tierd
