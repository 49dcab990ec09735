# Pattern invalidation of 1M keys by tierd under Redis and /healthz probes. Run it with
# bench/daemon_invalidate_run.sh (private redis-server and tierd).
add_executable(daemon_invalidate_bench daemon_invalidate_bench.cpp)
target_link_libraries(daemon_invalidate_bench PRIVATE tier_all tierd_warnings)
