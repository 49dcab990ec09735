#!/usr/bin/env bash
# Rate-limit checks: tier::Client beside redis-benchmark running the same script
# (core/lua/ratelimit.lua) by EVALSHA, same run, best of REPEAT; and the latency of
# unpipelined checks. Starts its own redis-server. Build first:
#   ninja -C build ratelimit_bench
# Usage: bench/ratelimit_run.sh [BUILD_DIR]   (default: build)
# Environment: ALGOS (default: all six), CLIENTS (default "1 16"), PIPELINE (default 32),
#              REQUESTS (default 200000), LATENCY_REQUESTS (default 20000), REPEAT (default 3).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
bench=$build/bench/ratelimit_bench
[ -x "$bench" ] || { echo "ratelimit_run: $bench not built" >&2; exit 1; }
command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null ||
  { echo "ratelimit_run: redis-server and redis-benchmark are needed (redis-tools)" >&2; exit 1; }

ALGOS=${ALGOS:-"fixed_window sliding_log sliding_counter token_bucket leaky_bucket gcra"}
CLIENTS=${CLIENTS:-"1 16"}
PIPELINE=${PIPELINE:-32}
REQUESTS=${REQUESTS:-200000}
LATENCY_REQUESTS=${LATENCY_REQUESTS:-20000}
REPEAT=${REPEAT:-3}
KEYSPACE=10000

. "$here/redis.sh"
bench_redis tier-rl-bench
sha=$(redis-cli -p "$port" SCRIPT LOAD "$(cat "$here/../core/lua/ratelimit.lua")")
echo "redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'); $(nproc) CPUs;" \
  "load $(cut -d' ' -f1-3 /proc/loadavg); P=$PIPELINE, $REQUESTS checks, $KEYSPACE users" >&2

key_of() {  # the key tier::RateLimiter uses for user __rand_int__
  if [ "$1" = fixed_window ]; then echo "ratelimit:{u__rand_int__}:requests:60000";
  else echo "ratelimit:{u__rand_int__}:$1:requests"; fi
}
peer() {  # algo clients
  redis-benchmark -p "$port" -c "$2" -P "$PIPELINE" -n "$REQUESTS" -r "$KEYSPACE" --csv -q \
    EVALSHA "$sha" 1 "$(key_of "$1")" "$1" 1000000 60000 0 1 0 2>/dev/null |
    awk -F'"' 'NR > 1 || $2 != "test" { v = $4 } END { printf "%.0f", v }'
}
ours() {  # algo clients
  "$bench" "$url" throughput "$1" "$2" "$REQUESTS" "$PIPELINE" "$KEYSPACE" | awk '{print $5}'
}
best() { sort -n | tail -1; }

printf '%-16s %4s %12s %16s %7s\n' algorithm c tier::Client redis-benchmark ratio
for algo in $ALGOS; do
  for c in $CLIENTS; do
    a=(); b=()
    for _ in $(seq "$REPEAT"); do
      a+=("$(ours "$algo" "$c")")
      b+=("$(peer "$algo" "$c")")
    done
    x=$(printf '%s\n' "${a[@]}" | best)
    y=$(printf '%s\n' "${b[@]}" | best)
    printf '%-16s %4s %12s %16s %7s\n' "$algo" "$c" "$x" "$y" \
      "$(awk -v x="$x" -v y="$y" 'BEGIN { printf "%.2f", x / y }')"
  done
done
echo
printf '%-16s %10s %10s %10s  (unpipelined, one client; goal p99 < 1000 us)\n' algorithm p50_us p99_us max_us
for algo in $ALGOS; do
  "$bench" "$url" latency "$algo" "$LATENCY_REQUESTS" |
    sed 's/[a-z0-9_]*=//g' | awk '{ printf "%-16s %10s %10s %10s\n", $2, $3, $4, $5 }'
done
