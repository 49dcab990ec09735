// Quota warnings as the quota_alerts handler reads them from system:quota_warning (anyone
// may publish there): check_quota_warning() must refuse what quota_notification() could not
// turn into a notification, and never throw; an accepted warning always yields a complete
// notification whose user channel is the user id as given.
//
// Input: the message body (inputs that are not a JSON object are skipped: the dispatcher
// refuses them before any handler runs).

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <nlohmann/json.hpp>

#include "handlers/quota_alerts/quota_alerts.hpp"

namespace {

[[noreturn]] void finding(const std::string& what) {
  std::fprintf(stderr, "fuzz_quota_warning: %s\n", what.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto w = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (w.is_discarded() || !w.is_object()) {
    return 0;
  }
  std::optional<std::string> bad;
  try {
    bad = tierd::check_quota_warning(w);
  } catch (const std::exception& e) {
    finding(std::string("check_quota_warning threw: ") + e.what());
  }
  if (bad) {
    if (bad->empty()) {
      finding("a refusal without a reason");
    }
    return 0;
  }
  nlohmann::json note;
  try {
    note = tierd::quota_notification(w, 1764417600000);
    (void)note.dump();
  } catch (const std::exception& e) {
    finding(std::string("an accepted warning broke the notification: ") + e.what());
  }
  for (const char* f : {"id", "kind", "title", "body", "data", "ts"}) {
    if (!note.contains(f)) {
      finding(std::string("notification without ") + f);
    }
  }
  const std::string user = w["user_id"].get<std::string>();
  if (user.empty() || user.find_first_of("*?[]{}") != std::string::npos) {
    finding("accepted a user id that would not name one channel: " + user);
  }
  return 0;
}
