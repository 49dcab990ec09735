#include "tier/errors.hpp"

namespace tier {

const char* to_string(ErrorKind kind) noexcept {
  switch (kind) {
    case ErrorKind::io:
      return "io";
    case ErrorKind::timeout:
      return "timeout";
    case ErrorKind::closed:
      return "closed";
    case ErrorKind::protocol:
      return "protocol";
    case ErrorKind::reply:
      return "reply";
    case ErrorKind::invalid:
      return "invalid";
    case ErrorKind::decode:
      return "decode";
  }
  return "unknown";
}

void throw_error(const Error& e) {
  switch (e.kind) {
    case ErrorKind::io:
      throw IoError(e.message);
    case ErrorKind::timeout:
      throw TimeoutError(e.message);
    case ErrorKind::closed:
      throw ClosedError(e.message);
    case ErrorKind::protocol:
      throw ProtocolError(e.message);
    case ErrorKind::reply:
      throw ReplyError(e.message);
    case ErrorKind::invalid:
      throw InvalidArgument(e.message);
    case ErrorKind::decode:
      throw DecodeError(e.message);
  }
  throw TierError(e.kind, e.message);
}

}  // namespace tier
