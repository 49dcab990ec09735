# Writes OUTPUT: a C++ file defining tierd::default_config_text(), the text of SOURCE
# (config/tierd.example.yaml) as a raw string literal, so the documented example is the
# built-in default.
file(READ "${SOURCE}" text)
string(FIND "${text}" ")tierdyaml\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${SOURCE} contains the raw-string delimiter")
endif()
file(WRITE "${OUTPUT}.tmp"
"// Generated from config/tierd.example.yaml by config/embed_config.cmake. Do not edit.
#include <string_view>

namespace tierd {
std::string_view default_config_text() {
  return R\"tierdyaml(${text})tierdyaml\";
}
}  // namespace tierd
")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
