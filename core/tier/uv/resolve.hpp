#pragma once
// Host name resolution off the loop: getaddrinfo blocks, so it runs on libuv's thread pool
// and the answer comes back on the loop.

#include <functional>
#include <string>

#include "tier/result.hpp"

typedef struct uv_loop_s uv_loop_t;

namespace tier {

/// True for an IPv4 or IPv6 address in text form (nothing to resolve).
bool is_ip_literal(const std::string& host);

/// Resolves `host` (TCP); `done` runs on the loop with the first address as text
/// ("10.0.0.7", "::1") or an `io` error naming the host. Callers whose object may be gone
/// by then capture a weak reference in `done`.
void resolve_host(uv_loop_t* loop, const std::string& host,
                  std::function<void(Result<std::string>)> done);

}  // namespace tier
