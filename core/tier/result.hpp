#pragma once
// Result<T>: the outcome of an I/O operation on the loop. Errors have few kinds
// (DESIGN §2); a Redis nil is an empty std::optional inside T, never an error.

#include <string>
#include <utility>
#include <variant>

namespace tier {

enum class ErrorKind {
  io,        ///< connection or socket failure
  timeout,   ///< the command's deadline passed
  closed,    ///< the client was closed or is not connected
  protocol,  ///< the server sent something we cannot parse
  reply,     ///< the server answered with an error reply (ERR, WRONGTYPE, ...)
  invalid,   ///< the caller passed a bad argument (id, value, size)
  decode,    ///< the reply had an unexpected shape or content (e.g. non-JSON value)
};

const char* to_string(ErrorKind kind) noexcept;

struct Error {
  ErrorKind kind = ErrorKind::io;
  std::string message;
  /// PostgreSQL's SQLSTATE for server errors from PgConn (e.g. "23505"), or the code word of
  /// a Redis error reply ("NOGROUP", "BUSYGROUP", "WRONGTYPE"); empty otherwise.
  std::string code;

  std::string describe() const { return std::string(to_string(kind)) + ": " + message; }
  /// The link failed, not the request: the same request may succeed later (io, timeout,
  /// closed). The one classification every retry decision starts from.
  bool transient() const noexcept {
    return kind == ErrorKind::io || kind == ErrorKind::timeout || kind == ErrorKind::closed;
  }
};

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &std::get<0>(v_); }
  const T* operator->() const { return &std::get<0>(v_); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

/// Result<void> equivalent.
struct Unit {
  bool operator==(const Unit&) const = default;
};
using Status = Result<Unit>;

inline Error make_error(ErrorKind kind, std::string message) {
  return Error{kind, std::move(message)};
}

}  // namespace tier
