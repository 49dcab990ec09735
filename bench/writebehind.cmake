# Write-behind benchmark (run it with bench/writebehind_run.sh, which starts the servers).
add_executable(writebehind_bench writebehind_bench.cpp)
target_link_libraries(writebehind_bench PRIVATE tier_all tierd_app PkgConfig::PQ PkgConfig::UV tierd_warnings)
