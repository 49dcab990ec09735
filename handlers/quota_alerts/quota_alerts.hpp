#pragma once
// The `quota_alerts` handler: turns each quota warning (system:quota_warning, DESIGN §5)
// into a notification on notifications:user:{user_id} and, at or above `admin_threshold`,
// one on notifications:admin. Each warning is sent once even with several tierd instances:
// the dispatcher's de-duplication on the warning's `id` (dedup_ttl_s) is on by default for
// this handler.
//
// Section keys: admin_threshold (default 1.0), dedup_ttl_s (default 86400).

#include "handlers/handler.hpp"

namespace tierd {

Factory quota_alerts_factory();

/// Why a quota warning cannot be turned into notifications (a field missing or of the
/// wrong type, a hostile user id), or nullopt.
std::optional<std::string> check_quota_warning(const nlohmann::json& warning);

/// The notification for a quota warning (of check_quota_warning()'s shape) (exposed for tests):
/// {"id", "kind", "title", "body", "data", "ts"}; `ts` is unix milliseconds.
nlohmann::json quota_notification(const nlohmann::json& warning, std::int64_t ts_ms);

}  // namespace tierd
