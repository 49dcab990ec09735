#pragma once
// The synchronous API throws; these are its exceptions. They are translated from
// tier::Error in exactly one place (throw_error), like redis-plus-plus errors.cpp.

#include <stdexcept>
#include <string>

#include "tier/result.hpp"

namespace tier {

/// Base of every exception libtier throws.
class TierError : public std::runtime_error {
 public:
  TierError(ErrorKind kind, const std::string& what) : std::runtime_error(what), kind_(kind) {}
  ErrorKind kind() const noexcept { return kind_; }

 private:
  ErrorKind kind_;
};

/// Connection-level failures: the command may or may not have run.
class IoError : public TierError {
 public:
  explicit IoError(const std::string& w, ErrorKind k = ErrorKind::io) : TierError(k, w) {}
};
class TimeoutError : public IoError {
 public:
  explicit TimeoutError(const std::string& w) : IoError(w, ErrorKind::timeout) {}
};
class ClosedError : public IoError {
 public:
  explicit ClosedError(const std::string& w) : IoError(w, ErrorKind::closed) {}
};
class ProtocolError : public TierError {
 public:
  explicit ProtocolError(const std::string& w) : TierError(ErrorKind::protocol, w) {}
};
/// Redis answered with an error reply (WRONGTYPE, ERR ...).
class ReplyError : public TierError {
 public:
  explicit ReplyError(const std::string& w) : TierError(ErrorKind::reply, w) {}
};
/// The caller passed something invalid (bad id, oversized value, non-JSON).
class InvalidArgument : public TierError {
 public:
  explicit InvalidArgument(const std::string& w) : TierError(ErrorKind::invalid, w) {}
};
/// A stored value could not be decoded (e.g. not JSON).
class DecodeError : public TierError {
 public:
  explicit DecodeError(const std::string& w) : TierError(ErrorKind::decode, w) {}
};

[[noreturn]] void throw_error(const Error& error);

/// Returns the value or throws the matching exception.
template <class T>
T unwrap(Result<T>&& r) {
  if (!r.ok()) {
    throw_error(r.error());
  }
  return std::move(r).value();
}

}  // namespace tier
