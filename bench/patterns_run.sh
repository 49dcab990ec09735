#!/usr/bin/env bash
# Cache patterns: the cache_aside hit path against a plain GET through the same client
# (goal: at most 1.2x), and a stampede on an expiring hot key with and without single-flight.
# Starts its own redis-server. Build first: ninja -C build patterns_bench
# Usage: bench/patterns_run.sh [BUILD_DIR]   Environment: REQUESTS (20000), READERS (32),
#        EXPIRIES (5)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
bench=$build/bench/patterns_bench
[ -x "$bench" ] || { echo "patterns_run: $bench not built" >&2; exit 1; }
REQUESTS=${REQUESTS:-20000}
READERS=${READERS:-32}
EXPIRIES=${EXPIRIES:-5}

. "$here/redis.sh"
bench_redis tier-patterns-bench
echo "redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'); $(nproc) CPUs;" \
  "load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
"$bench" "$url" hit "$REQUESTS"
"$bench" "$url" stampede "$READERS" "$EXPIRIES"
