#include "handlers/count/count.hpp"

#include <utility>
#include <vector>

#include "config/yaml.hpp"
#include "tier/metrics.hpp"

namespace tierd {

namespace {

/// Series kept at hand per subscription pattern; past this many (plain channel
/// subscriptions could bring many) the registry is asked each time.
constexpr std::size_t kMaxCachedSeries = 64;

class CountHandler final : public Handler {
 public:
  explicit CountHandler(Context& ctx)
      : name_(ctx.handler_name()),
        family_(ctx.metrics().counter("tierd_events_counted_total",
                                      "Events taken by count handlers, by handler and "
                                      "subscription pattern")) {}

  void handle(std::shared_ptr<const Event> event, Done done) override {
    series(event->pattern).inc();
    done(HandlerResult::ok());
  }

  bool needs_body() const override { return false; }

 private:
  tier::metrics::Counter& series(const std::string& pattern) {
    // A linear scan: a handler sees a handful of patterns, and comparing short strings
    // is cheaper than hashing them.
    for (const auto& [p, c] : cache_) {
      if (p == pattern) {
        return *c;
      }
    }
    auto& c = family_.with({{"handler", name_}, {"channel_pattern", pattern}});
    if (cache_.size() < kMaxCachedSeries) {
      cache_.emplace_back(pattern, &c);
    }
    return c;
  }

  std::string name_;
  tier::metrics::Family<tier::metrics::Counter>& family_;
  std::vector<std::pair<std::string, tier::metrics::Counter*>> cache_;
};

}  // namespace

Factory count_factory() {
  return [](const YAML::Node& section, const std::string& path, const HostInfo&) -> Builder {
    // Only the common keys: there is nothing else to configure.
    yaml::Map m(section, path, common_handler_keys());
    (void)m;
    return [](Context& ctx) -> std::unique_ptr<Handler> {
      return std::make_unique<CountHandler>(ctx);
    };
  };
}

}  // namespace tierd
