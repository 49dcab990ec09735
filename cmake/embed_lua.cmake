# Writes OUTPUT: a C++ file defining tier::detail::embedded_lua(), the text of every
# script in SOURCES as a raw string literal, so the binaries carry core/lua verbatim.
set(body "")
foreach(src IN LISTS SOURCES)
  get_filename_component(name "${src}" NAME_WE)
  file(READ "${src}" text)
  string(FIND "${text}" ")tierlua\"" clash)
  if(NOT clash EQUAL -1)
    message(FATAL_ERROR "${src} contains the raw-string delimiter")
  endif()
  string(APPEND body "    {\"${name}\", R\"tierlua(${text})tierlua\"},\n")
endforeach()
file(WRITE "${OUTPUT}.tmp"
"// Generated from core/lua/*.lua by cmake/embed_lua.cmake. Do not edit.
#include <string_view>
#include <utility>
#include <vector>

namespace tier::detail {
const std::vector<std::pair<std::string_view, std::string_view>>& embedded_lua() {
  static const std::vector<std::pair<std::string_view, std::string_view>> scripts{
${body}  };
  return scripts;
}
}  // namespace tier::detail
")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
