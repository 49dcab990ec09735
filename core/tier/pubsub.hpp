#pragma once
// Publishing JSON messages (DESIGN §5). Subscribing: Client::subscribe (blocking) and
// AsyncSubscriber (on the loop).

#include <string_view>

#include "tier/cache.hpp"

namespace tier {

/// Largest message publish() accepts, in bytes (tierd's default max_message_bytes).
inline constexpr std::size_t kMaxMessageBytes = 1 << 20;

/// PUBLISH channel <json>; returns how many subscribers received it. The channel is
/// checked like an id; the message must be a JSON object no larger than max_bytes.
Op<long long> publish(std::string_view channel, const Json& message,
                      std::size_t max_bytes = kMaxMessageBytes);

}  // namespace tier
