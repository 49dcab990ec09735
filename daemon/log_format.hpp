#pragma once
// How tierd's log lines look: text (the default: a terminal, journald) or JSON lines for log
// collectors, one object per line: {"ts","level","logger","msg","pid"}, every string escaped
// (control bytes as \u00XX, invalid UTF-8 replaced by U+FFFD), so a hostile byte in a
// message can neither break a line nor forge a field.

#include <memory>
#include <string>
#include <string_view>

#include <spdlog/logger.h>

namespace tierd {

enum class LogFormat { text, json };

/// Parses "text" or "json" into `out`; false (and `out` untouched) for anything else.
bool parse_log_format(std::string_view s, LogFormat& out);

/// Formats `logger`'s lines as `format` from now on.
void apply_log_format(spdlog::logger& logger, LogFormat format);

/// Appends `s` as a JSON string (quotes included) to `out`.
void append_json_string(std::string& out, std::string_view s);

}  // namespace tierd
