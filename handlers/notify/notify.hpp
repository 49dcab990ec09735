#pragma once
// The `notify` handler: delivers the messages of the channels it is routed to
// (notifications:*) to its sinks. A `webhook` sink POSTs the message, as it came, as the
// JSON body, through the host's HTTP client (libcurl multi on the loop): 2xx is delivered,
// 5xx, timeouts and connection errors are retried with backoff up to max_attempts, any
// other status is final. A `log` sink writes one line per message. Each sink has its own
// bounded queue and pace; a failing sink never affects /readyz, and /metrics shows it.
//
// Section keys: sinks (a list of {name, type, ...}), stop_timeout_ms (default 5000).
// webhook: url, headers (values may use ${ENV_VAR} for secrets, never written in the YAML),
//          timeout_ms (5000), max_attempts (5), retry_backoff_ms (500), rate_per_s (0 = no
//          pace), queue (1000).
// log:     level (info).

#include "handlers/handler.hpp"

namespace tierd {

/// Header values name their secrets in HostInfo::env.
Factory notify_factory();

}  // namespace tierd
