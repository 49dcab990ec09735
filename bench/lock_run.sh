#!/usr/bin/env bash
# Lock acquire + release pairs through tier::Client beside redis-benchmark running the same
# script (core/lua/lock.lua) by EVALSHA: acquire on random names, then release on random names,
# same pipeline and clients; ratio of lock commands per second. Build first:
#   ninja -C build lock_bench
# Usage: bench/lock_run.sh [BUILD_DIR]   Environment: CLIENTS ("1 16"), PIPELINE (32),
#        PAIRS (100000), REPEAT (3).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
bench=$build/bench/lock_bench
[ -x "$bench" ] || { echo "lock_run: $bench not built" >&2; exit 1; }
CLIENTS=${CLIENTS:-"1 16"}
PIPELINE=${PIPELINE:-32}
PAIRS=${PAIRS:-100000}
REPEAT=${REPEAT:-3}
KEYSPACE=10000

. "$here/redis.sh"
bench_redis tier-lock-bench
sha=$(redis-cli -p "$port" SCRIPT LOAD "$(cat "$here/../core/lua/lock.lua")")
echo "redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'); $(nproc) CPUs;" \
  "load $(cut -d' ' -f1-3 /proc/loadavg); P=$PIPELINE, $PAIRS pairs" >&2

rb() {  # clients action args...: requests per second of one script action
  local c=$1
  shift
  redis-benchmark -p "$port" -c "$c" -P "$PIPELINE" -n "$PAIRS" -r "$KEYSPACE" --csv -q \
    EVALSHA "$sha" 2 'bench:lock:{l__rand_int__}' 'bench:lock:{l__rand_int__}:fence' "$@" \
    2>/dev/null | awk -F'"' '{ v = $4 } END { printf "%.0f", v }'
}
peer() {  # clients: acquire + release commands per second, as a pair
  local a r
  a=$(rb "$1" acquire tok 10000)
  r=$(rb "$1" release tok 0 '')
  awk -v a="$a" -v r="$r" 'BEGIN { printf "%.0f", 2 / (1 / a + 1 / r) }'
}
ours() { "$bench" "$url" "$1" "$PAIRS" "$PIPELINE" "$KEYSPACE" | awk '{print $4}'; }
best() { sort -n | tail -1; }

printf '%4s %14s %16s %7s\n' c tier::Client redis-benchmark ratio
for c in $CLIENTS; do
  a=(); b=()
  for _ in $(seq "$REPEAT"); do
    a+=("$(ours "$c")")
    b+=("$(peer "$c")")
  done
  x=$(printf '%s\n' "${a[@]}" | best)
  y=$(printf '%s\n' "${b[@]}" | best)
  printf '%4s %14s %16s %7s\n' "$c" "$x" "$y" "$(awk -v x="$x" -v y="$y" 'BEGIN { printf "%.2f", x / y }')"
done
