#pragma once
// The `provider_health` handler: probes the AI model providers' endpoints and keeps
// provider:{name}:health_status current (docs/handlers.md#provider-health). Only the leader
// probes (Context::lead): several tierd instances probe once per interval between them, and
// when the leader dies another takes over within one lease. A probe goes through the host's
// HTTP client (nothing blocks; a hanging provider only times out). Status changes pass a
// hysteresis (unhealthy_after failures, healthy_after successes) and each change publishes
// one events:provider_health_changed. system:health_check ({} or {"provider": name}) makes
// the leader probe now.

#include "handlers/handler.hpp"

namespace tierd {

Factory provider_health_factory();

}  // namespace tierd
