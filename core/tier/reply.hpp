#pragma once
// An owned Redis reply. hiredis frees its reply when the callback returns, so every
// transport copies it into this value before decoding (DESIGN §2: sans-IO operations).

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

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

  /// Same type, value and elements, all the way down.
  bool operator==(const Reply&) const = default;

  /// hiredis's reply type codes (REDIS_REPLY_*), named here so that this layer needs no
  /// hiredis; the transports check them against hiredis's own where they include it.
  struct HiredisType {
    static constexpr int string = 1, array = 2, integer = 3, nil = 4, status = 5, error = 6;
  };
  /// Deep copy of a hiredis reply (nullptr becomes nil). A template over the reply struct,
  /// instantiated by the transports with redisReply.
  template <class R>
  static Reply from_hiredis(const R* r) {
    Reply out;
    if (r == nullptr) {
      return out;
    }
    switch (r->type) {
      case HiredisType::string:
        out.type = Type::string;
        out.str.assign(r->str, r->len);
        break;
      case HiredisType::status:
        out.type = Type::status;
        out.str.assign(r->str, r->len);
        break;
      case HiredisType::error:
        out.type = Type::error;
        out.str.assign(r->str, r->len);
        break;
      case HiredisType::integer:
        out.type = Type::integer;
        out.integer = r->integer;
        break;
      case HiredisType::array:
        out.type = Type::array;
        out.elements.reserve(r->elements);
        for (std::size_t i = 0; i < r->elements; ++i) {
          out.elements.push_back(from_hiredis(r->element[i]));
        }
        break;
      default:
        out.type = Type::nil;
    }
    return out;
  }
  /// Short human description of the reply's type, for error messages.
  const char* type_name() const noexcept;
};

}  // namespace tier
