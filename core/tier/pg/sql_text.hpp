#pragma once
// SQL text built by hand: quoted identifiers and literals for statements, and values in
// COPY's text format. No connection needed; PgConn's users include it through conn.hpp.

#include <optional>
#include <string>
#include <string_view>

namespace tier {

/// `name` as a quoted SQL identifier ("a""b"); throws InvalidArgument if it is empty,
/// too long for PostgreSQL (63 bytes) or contains a NUL byte.
std::string pg_quote_ident(std::string_view name);
/// `value` as a SQL string literal (E'...', backslashes and quotes escaped): the same
/// string whatever standard_conforming_strings says. Throws InvalidArgument on a NUL byte.
std::string pg_quote_literal(std::string_view value);
/// One value escaped for COPY text format (backslash, tab, newline, CR); nullopt is \N.
void pg_copy_escape(std::string& out, const std::optional<std::string>& value);

}  // namespace tier
