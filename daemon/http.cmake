include_guard(GLOBAL)
# The daemon's HTTP endpoints server and systemd notifications, each a small static library
# so tests link them without the rest of the daemon.
find_library(HTTP_PARSER_LIB http_parser REQUIRED)

add_library(tierd_http STATIC ${CMAKE_CURRENT_LIST_DIR}/http.cpp ${CMAKE_CURRENT_LIST_DIR}/http_session.cpp)
target_include_directories(tierd_http PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(tierd_http PUBLIC tier_core PkgConfig::UV spdlog::spdlog PRIVATE ${HTTP_PARSER_LIB} tierd_warnings)

add_library(tierd_notify STATIC ${CMAKE_CURRENT_LIST_DIR}/notify.cpp)
target_include_directories(tierd_notify PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(tierd_notify PUBLIC tier_core PkgConfig::UV PRIVATE PkgConfig::SYSTEMD tierd_warnings)
