#pragma once
// An owned Redis reply. hiredis frees its reply when the callback returns, so every
// transport copies it into this value before decoding (DESIGN §2: sans-IO operations).

#include <cstdint>
#include <string>
#include <vector>

struct redisReply;

namespace tier {

struct Reply {
  enum class Type : std::uint8_t { nil, string, status, error, integer, array };

  Type type = Type::nil;
  long long integer = 0;
  std::string str;              ///< string, status and error replies
  std::vector<Reply> elements;  ///< array replies

  bool is_nil() const noexcept { return type == Type::nil; }
  bool is_error() const noexcept { return type == Type::error; }
  bool is_string() const noexcept { return type == Type::string; }
  bool is_integer() const noexcept { return type == Type::integer; }
  bool is_array() const noexcept { return type == Type::array; }

  static Reply status(std::string s) { return Reply{Type::status, 0, std::move(s), {}}; }
  static Reply string(std::string s) { return Reply{Type::string, 0, std::move(s), {}}; }
  static Reply error(std::string s) { return Reply{Type::error, 0, std::move(s), {}}; }
  static Reply number(long long n) { return Reply{Type::integer, n, {}, {}}; }
  static Reply nil() { return Reply{}; }
  static Reply array(std::vector<Reply> e) { return Reply{Type::array, 0, {}, std::move(e)}; }

  /// Deep copy of a hiredis reply (nullptr becomes nil).
  static Reply from_hiredis(const redisReply* r);
  /// Short human description of the reply's type, for error messages.
  const char* type_name() const noexcept;
};

}  // namespace tier
