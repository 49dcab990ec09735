#pragma once
// The `count` handler: meters the events routed to it and does nothing else. A tap that
// shows how much traffic a family of channels carries (tierd_events_counted_total
// {handler, channel_pattern}), and the no-op route the dispatch benchmark measures tierd
// with. It never reads the body, so its events are validated but not parsed into a DOM.

#include "handlers/handler.hpp"

namespace tierd {

Factory count_factory();

}  // namespace tierd
