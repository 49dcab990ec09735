#!/usr/bin/env bash
# Lock commands through tier::Client beside redis-benchmark running the same script
# (core/lua/lock.lua) by EVALSHA, on the same workload: on a flushed server, an acquire run
# on random names (token "tok"), then a release run on random names; same clients, pipeline,
# command count and key space on both sides; the ratio is of the pair rate (the harmonic mean
# of the two runs). tier::Client's rate for acquire + release of the same name (each client its
# own token, every command succeeding) is printed beside it. Build first:
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

flush() { redis-cli -p "$port" FLUSHALL >/dev/null; }
pair_rate() { awk -v a="$1" -v r="$2" 'BEGIN { printf "%.0f", 2 / (1 / a + 1 / r) }'; }
rb() {  # clients action args...: requests per second of one script action
  local c=$1
  shift
  redis-benchmark -p "$port" -c "$c" -P "$PIPELINE" -n "$PAIRS" -r "$KEYSPACE" --csv -q \
    EVALSHA "$sha" 2 'bench:lock:{l__rand_int__}' 'bench:lock:{l__rand_int__}:fence' "$@" \
    2>/dev/null | awk -F'"' '{ v = $4 } END { printf "%.0f", v }'
}
peer() {  # clients: acquire run then release run, as a pair rate
  local a r
  flush
  a=$(rb "$1" acquire tok 10000)
  r=$(rb "$1" release tok 0 '')
  pair_rate "$a" "$r"
}
run() { "$bench" "$url" "$1" "$PAIRS" "$PIPELINE" "$KEYSPACE" "$2" | awk '{print $5}'; }
ours() {
  local a r
  flush
  a=$(run "$1" acquire)
  r=$(run "$1" release)
  pair_rate "$a" "$r"
}
best() { sort -n | tail -1; }

printf '%4s %14s %16s %7s %18s\n' c tier::Client redis-benchmark ratio 'same-name pairs'
for c in $CLIENTS; do
  a=(); b=(); p=()
  for _ in $(seq "$REPEAT"); do
    a+=("$(ours "$c")")
    b+=("$(peer "$c")")
    flush
    p+=("$(run "$c" pair)")
  done
  x=$(printf '%s\n' "${a[@]}" | best)
  y=$(printf '%s\n' "${b[@]}" | best)
  z=$(printf '%s\n' "${p[@]}" | best)
  printf '%4s %14s %16s %7s %18s\n' "$c" "$x" "$y" \
    "$(awk -v x="$x" -v y="$y" 'BEGIN { printf "%.2f", x / y }')" "$z"
done
