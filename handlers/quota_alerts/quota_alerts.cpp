#include "handlers/quota_alerts/quota_alerts.hpp"

#include <spdlog/logger.h>

#include <cmath>
#include <cstdio>

#include "config/yaml.hpp"
#include "tier/keys.hpp"
#include "tier/metrics.hpp"
#include "tier/pubsub.hpp"
#include "tier/uv/async_client.hpp"

namespace tierd {

namespace {

using Json = nlohmann::json;

}  // namespace

std::optional<std::string> check_quota_warning(const Json& w) {
  for (const char* f : {"id", "user_id", "metric", "period", "period_key"}) {
    if (!w.contains(f) || !w[f].is_string()) {
      return std::string("field '") + f + "' must be a string";
    }
  }
  for (const char* f : {"used", "limit", "ratio", "threshold"}) {
    if (!w.contains(f) || !w[f].is_number()) {
      return std::string("field '") + f + "' must be a number";
    }
  }
  if (auto bad = tier::check_id(w["user_id"].get<std::string>(), "user_id")) {
    return bad->message;
  }
  if (w["user_id"].get<std::string>().find_first_of("{}*?[]") != std::string::npos) {
    return "user_id must not contain glob or hash-tag characters";
  }
  return std::nullopt;
}

namespace {

std::string percent(double ratio) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.0f%%", std::floor(ratio * 100.0 + 1e-9));
  return buf;
}

class QuotaAlerts final : public Handler {
 public:
  QuotaAlerts(Context& ctx, double admin_threshold)
      : ctx_(ctx),
        admin_threshold_(admin_threshold),
        sent_(ctx.metrics().counter("tierd_quota_alerts_total",
                                    "Notifications sent for quota warnings, by audience")),
        rejected_(ctx.metrics().counter("tierd_quota_alerts_rejected_total",
                                        "Quota warnings that could not be turned into alerts")) {}

  // Several tierd instances all receive each warning: one of them sends it.
  std::chrono::seconds default_dedup_ttl() const override { return std::chrono::seconds(86400); }

  std::vector<std::string> required_fields() const override {
    return {"id", "user_id", "metric", "period", "used", "limit", "threshold"};
  }

  void handle(std::shared_ptr<const Event> event, Done done) override {
    const Json& w = event->body;
    if (auto bad = check_quota_warning(w)) {
      rejected_.with({{"handler", ctx_.handler_name()}}).inc();
      done(HandlerResult::fail("quota warning: " + *bad));
      return;
    }
    const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    const Json note = quota_notification(w, now);
    const std::string body = note.dump();
    std::vector<tier::Command> cmds{tier::Command::of(
        {"PUBLISH", "notifications:user:" + w["user_id"].get<std::string>(), body})};
    const bool admin = w["threshold"].get<double>() >= admin_threshold_;
    if (admin) {
      cmds.push_back(tier::Command::of({"PUBLISH", "notifications:admin", body}));
    }
    ctx_.redis().exec(
        std::move(cmds), std::chrono::milliseconds(0),
        [this, admin, done = std::move(done)](tier::Result<std::vector<tier::Reply>> r) {
          if (!r.ok()) {
            done(HandlerResult::retry(r.error().describe()));
            return;
          }
          sent_.with({{"handler", ctx_.handler_name()}, {"audience", "user"}}).inc();
          if (admin) {
            sent_.with({{"handler", ctx_.handler_name()}, {"audience", "admin"}}).inc();
          }
          done(HandlerResult::ok());
        });
  }

 private:
  Context& ctx_;
  double admin_threshold_;
  tier::metrics::Family<tier::metrics::Counter>& sent_;
  tier::metrics::Family<tier::metrics::Counter>& rejected_;
};

}  // namespace

Json quota_notification(const Json& w, std::int64_t ts_ms) {
  const std::string metric = w["metric"].get<std::string>();
  const std::string period = w["period"].get<std::string>();
  const double ratio = w["ratio"].get<double>();
  const bool over = ratio >= 1.0;
  Json data = w;
  return {{"id", w["id"]},
          {"kind", "quota_warning"},
          {"title", over ? "Quota reached: " + metric : "Quota warning: " + metric},
          {"body", "You have used " + percent(ratio) + " of your " + period + " " + metric +
                       " quota (" + w["used"].dump() + " of " + w["limit"].dump() + ", " +
                       w["period_key"].get<std::string>() + ")."},
          {"data", data},
          {"ts", ts_ms}};
}

Factory quota_alerts_factory() {
  return [](const YAML::Node& section, const std::string& path, const HostInfo&) -> Builder {
    std::vector<std::string> keys = common_handler_keys();
    keys.emplace_back("admin_threshold");
    yaml::Map m(section, path, keys);
    const double admin = m.number("admin_threshold", 1.0, 0.0, 10.0);
    return [admin](Context& ctx) -> std::unique_ptr<Handler> {
      return std::make_unique<QuotaAlerts>(ctx, admin);
    };
  };
}

}  // namespace tierd
