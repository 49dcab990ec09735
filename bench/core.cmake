# libtier benchmarks (run them with bench/core_run.sh, which starts its own redis-server).
add_executable(core_cache_bench core_cache_bench.cpp)
target_link_libraries(core_cache_bench PRIVATE tier_all tierd_warnings)

add_executable(core_delete_bench core_delete_bench.cpp)
target_link_libraries(core_delete_bench PRIVATE tier_all tierd_warnings)

add_executable(core_hash_bench core_hash_bench.cpp)
target_link_libraries(core_hash_bench PRIVATE tier_all OpenSSL::Crypto tierd_warnings)

add_executable(ratelimit_bench ratelimit_bench.cpp)
target_link_libraries(ratelimit_bench PRIVATE tier_all tierd_warnings)

add_executable(patterns_bench patterns_bench.cpp)
target_link_libraries(patterns_bench PRIVATE tier_all tierd_warnings)

add_executable(lock_bench lock_bench.cpp)
target_link_libraries(lock_bench PRIVATE tier_all tierd_warnings)
