# Dispatch benchmark: tierd against a bare hiredis+libuv subscriber and a Python peer, all fed
# by the same pipelined publisher. Run it with bench/daemon_run.sh (private redis-server).
add_executable(daemon_publisher daemon_publisher.cpp)
target_link_libraries(daemon_publisher PRIVATE PkgConfig::HIREDIS tierd_warnings)

add_executable(daemon_bare_subscriber daemon_bare_subscriber.cpp)
target_link_libraries(daemon_bare_subscriber PRIVATE PkgConfig::HIREDIS PkgConfig::UV tierd_warnings)
include(${CMAKE_CURRENT_SOURCE_DIR}/daemon_invalidate.cmake OPTIONAL)
