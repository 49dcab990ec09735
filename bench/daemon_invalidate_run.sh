#!/usr/bin/env bash
# Pattern invalidation benchmark: one system:cache_invalidation message asks the real tierd
# to delete every key matching inv:* (KEYS keys, default 1,000,000) while a probe PINGs Redis
# every millisecond on its own connection and another GETs tierd's /healthz every
# millisecond. Prints the time until the keys are gone and the probes' worst and p99
# latency (goal: worst <= 10 ms).
#
# Starts a private redis-server (free port, temp dir, DEBUG allowed for DEBUG POPULATE) and
# tierd with a config pointing at it, runs bench/daemon_invalidate_bench, stops both.
# Builds nothing: build first with
#   ninja -C build tierd daemon_invalidate_bench
# Usage: bench/daemon_invalidate_run.sh [BUILD_DIR]   Environment: KEYS (default 1000000),
#        SCAN_BATCH (the handler's scan_batch, default 1000)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-$here/../build}" && pwd)
KEYS=${KEYS:-1000000}
SCAN_BATCH=${SCAN_BATCH:-1000}
bench=$build/bench/daemon_invalidate_bench
tierd=$build/daemon/tierd
for b in "$bench" "$tierd"; do
  [ -x "$b" ] || { echo "daemon_invalidate_run: $b not built" >&2; exit 1; }
done

dir=$(mktemp -d "${TMPDIR:-/tmp}/tierd-invalidate-bench.XXXXXX")
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
port=$(free_port)
http_port=$(free_port)
redis_pid=""
tierd_pid=""
cleanup() {
  if [ -n "$tierd_pid" ]; then
    kill -TERM "$tierd_pid" 2>/dev/null || true
    wait "$tierd_pid" 2>/dev/null || true
  fi
  if [ -n "$redis_pid" ]; then
    kill -TERM "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT

redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly no \
  --enable-debug-command yes --logfile "$dir/redis.log" --daemonize no &
redis_pid=$!
for _ in $(seq 100); do
  [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ] && break
  sleep 0.05
done

cat >"$dir/tierd.yaml" <<YAML
redis:
  url: redis://127.0.0.1:$port/0
http:
  listen: 127.0.0.1:$http_port
log_level: warn
handlers:
  - type: invalidate
    name: invalidate
    on: ["system:cache_invalidation"]
    scan_batch: $SCAN_BATCH
YAML
"$tierd" --check-config "$dir/tierd.yaml" >/dev/null
"$tierd" --config "$dir/tierd.yaml" >"$dir/tierd.log" 2>&1 &
tierd_pid=$!
ready=""
for _ in $(seq 200); do
  if curl -sf "http://127.0.0.1:$http_port/readyz" >/dev/null 2>&1; then
    ready=1
    break
  fi
  kill -0 "$tierd_pid" 2>/dev/null || break
  sleep 0.05
done
if [ -z "$ready" ]; then
  echo "daemon_invalidate_run: tierd did not become ready:" >&2
  cat "$dir/tierd.log" >&2
  exit 1
fi

result=$("$bench" "redis://127.0.0.1:$port/0" "127.0.0.1:$http_port" "$KEYS")
metrics=$(curl -sf "http://127.0.0.1:$http_port/metrics")
field() { echo "$result" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2 }'; }
metric() { echo "$metrics" | awk -v k="$1" 'index($0, k " ") == 1 { print $2 }'; }

echo "pattern invalidation benchmark: $KEYS keys inv:* (+10000 keep:* that survive), scan_batch=$SCAN_BATCH," \
  "$(nproc) cores, redis $(redis-server --version | awk '{print $3}' | cut -d= -f2)"
echo "$result"
printf 'time until the keys are gone: %s ms\n' "$(field total_ms)"
printf 'redis PING probe   (%s probes): worst %s ms, p99 %s ms\n' \
  "$(field redis_probes)" "$(field redis_worst_ms)" "$(field redis_p99_ms)"
printf 'tierd /healthz probe (%s probes): worst %s ms, p99 %s ms\n' \
  "$(field healthz_probes)" "$(field healthz_worst_ms)" "$(field healthz_p99_ms)"
printf 'tierd: keys deleted by pattern %s, jobs ok %s\n' \
  "$(metric 'tierd_invalidate_keys_deleted_total{handler="invalidate",kind="pattern"}')" \
  "$(metric 'tierd_invalidate_jobs_total{handler="invalidate",result="ok"}')"
worst=$(awk -v a="$(field redis_worst_ms)" -v b="$(field healthz_worst_ms)" 'BEGIN { print (a > b) ? a : b }')
awk -v w="$worst" 'BEGIN { exit !(w <= 10) }' && verdict=met || verdict=missed
echo "goal worst probe latency <= 10 ms: $verdict (worst $worst ms)"
