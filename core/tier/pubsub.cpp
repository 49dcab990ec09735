#include "tier/pubsub.hpp"

#include "tier/json_dump.hpp"
#include "tier/keys.hpp"

namespace tier {

Op<long long> publish(std::string_view channel, const Json& message, std::size_t max_bytes) {
  if (auto bad = check_id(channel, "channel")) {
    return Op<long long>::fail(*bad);
  }
  if (!message.is_object()) {
    return Op<long long>::fail(
        Error{ErrorKind::invalid,
              "message for channel '" + std::string(channel) + "' must be a JSON object"});
  }
  std::string text;
  try {
    json::dump(message, text);
  } catch (const Json::exception& e) {
    return Op<long long>::fail(Error{
        ErrorKind::invalid, "message for channel '" + std::string(channel) + "': " + e.what()});
  }
  if (max_bytes != 0 && text.size() > max_bytes) {
    return Op<long long>::fail(
        Error{ErrorKind::invalid, "message for channel '" + std::string(channel) + "' is " +
                                      std::to_string(text.size()) + " bytes, over the " +
                                      std::to_string(max_bytes) + "-byte limit"});
  }
  return single<long long>(Command::of({"PUBLISH", std::string(channel), std::move(text)}),
                           [ch = std::string(channel)](Reply&& r) {
                             return decode_integer(std::move(r), "PUBLISH " + ch);
                           });
}

}  // namespace tier
