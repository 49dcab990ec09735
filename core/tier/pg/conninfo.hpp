#pragma once
// What a libpq conninfo (key=value pairs or a postgresql:// URI) says, read by libpq's own
// parser (PQconninfoParse: no I/O). One reading for the config check and the connection.
// A target of its own (tier::pg_conninfo: core + libpq), so that the config reader can
// check a conninfo up front without linking the loop.

#include <string>

namespace tier {

struct ConninfoParts {
  std::string host;      ///< host= (a name, an address, a socket directory, or a list)
  std::string hostaddr;  ///< hostaddr=
  bool has_password = false;
};

/// Parses `conninfo`. Throws InvalidArgument naming what is wrong: a NUL byte (libpq would
/// read up to it and drop the rest), or libpq's own message, without its quoted part when
/// the input could hold a password (libpq quotes a malformed percent-encoded token, the
/// whole URI or the word after an unquoted value: any of which can be the password).
ConninfoParts parse_conninfo(const std::string& conninfo);

}  // namespace tier
