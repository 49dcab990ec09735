#pragma once
// The `warm` handler: fills cache keys from PostgreSQL (docs/handlers.md#warm). Each warmer
// runs one SELECT with $1..$n taken from message fields, shapes the rows into JSON
// (`row`: the first row as an object, `rows`: all rows as an array, `per_row`: one key per
// row) and writes them with pipelined SETs and the tier's TTL (or ttl_s). Triggers: events
// on the warmer's `on` globs, `at_start`, `interval_s`, and system:cache_warm
// {"warmer": name, "params": {...}} for one warmer on demand.
//
// Queries run on the host's PostgreSQL link without blocking the loop, each with a deadline
// (query_timeout_ms), at most max_queries at once; a failing run is counted and retried with
// backoff (transient errors) or refused (bad input, query errors), never stalling other
// handlers.

#include "handlers/handler.hpp"

namespace tierd {

Factory warm_factory();

}  // namespace tierd
