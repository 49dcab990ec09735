#!/usr/bin/env bash
# Dispatch benchmark: how fast tierd takes pub/sub messages off Redis, against a bare
# hiredis+libuv subscriber (the ceiling) and a Python peer (redis-py + hiredis, json.loads,
# route by channel). Each subscriber in turn, alone, against a private redis-server, fed by
# the same pipelined publisher (N messages of ~200 bytes JSON on events:bench).
#
# Two modes:
#   live   the publisher floods while the subscriber reads, under Redis's default pubsub
#          output-buffer limit (32 MB hard, 8 MB for 60 s): shows who keeps up and who is
#          disconnected.
#   drain  the subscriber is stopped (SIGSTOP) while all N are published into an unlimited
#          output buffer, then resumed: its pure read-and-dispatch capacity.
# msgs/s = messages received / (time of the last one - start), start = publisher start (live)
# or resume (drain). tierd runs with a `count` handler on events:* (a counting no-op route,
# like the Python peer's handlers) and its count and last time come from /metrics
# (tierd_events_counted_total{handler="count",channel_pattern="events:*"}, polled every
# 10 ms): tierd's receive + validate + route + handler cost per message.
#
# "disconnected": yes(B) when Redis closed the client for its output-buffer limit B times
# (redis log), or the subscriber saw its link drop; for tierd yes(B+Rr) also counts its own
# subscriber reconnects R (tierd_redis_reconnects_total). Messages lost either way show in
# received/N.
#
# Builds nothing: build first with
#   ninja -C build daemon_publisher daemon_bare_subscriber tierd
# Usage: bench/daemon_run.sh [BUILD_DIR]   Environment: N (default 300000), MODES ("live drain"),
#   PROFILE=PREFIX (perf record of each tierd during its drain, into PREFIX.NAME.data)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-$here/../build}" && pwd)
N=${N:-300000}
MODES=${MODES:-"live drain"}
PY=/usr/bin/python3  # Debian's python3, where python3-redis and python3-hiredis live
pub=$build/bench/daemon_publisher
bare=$build/bench/daemon_bare_subscriber
tierd=$build/daemon/tierd
for b in "$pub" "$bare"; do
  [ -x "$b" ] || { echo "daemon_run: $b not built" >&2; exit 1; }
done
$PY -c 'import redis, hiredis' 2>/dev/null ||
  { echo "daemon_run: $PY lacks redis/hiredis (python3-redis, python3-hiredis)" >&2; exit 1; }

dir=$(mktemp -d "${TMPDIR:-/tmp}/tierd-dispatch-bench.XXXXXX")
free_port() {
  $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
port=$(free_port)
redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly no \
  --logfile "$dir/redis.log" --daemonize no &
redis_pid=$!
child=""
cleanup() {
  set +e
  if [ -n "$child" ]; then
    kill -CONT "$child" 2>/dev/null
    kill -TERM "$child" 2>/dev/null
    wait "$child" 2>/dev/null
  fi
  kill -TERM "$redis_pid" 2>/dev/null
  wait "$redis_pid" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
rcli() { redis-cli -h 127.0.0.1 -p "$port" "$@"; }
for _ in $(seq 100); do
  [ "$(rcli ping 2>/dev/null)" = PONG ] && break
  sleep 0.05
done

vm() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
now() { date +%s.%N; }
buffer_drops() { grep -c "overcoming of output buffer limits" "$dir/redis.log" || true; }
set_limits() {
  if [ "$1" = drain ]; then
    rcli config set client-output-buffer-limit "pubsub 0 0 0" >/dev/null
  else
    rcli config set client-output-buffer-limit "pubsub 33554432 8388608 60" >/dev/null
  fi
}
wait_ready() {  # file pid
  for _ in $(seq 200); do
    grep -q '^ready' "$1" 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}
field() { echo "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k { print $2 }'; }

declare -A RATE
results=()
record() {  # mode name received last t0 idle_kb hwm_kb disconnected publisher_line
  local mode=$1 name=$2 received=$3 last=$4 t0=$5 idle_kb=$6 hwm_kb=$7 disc=$8 publine=$9
  local rate
  rate=$(awk -v r="$received" -v l="$last" -v t="$t0" 'BEGIN { d = l - t; printf "%.0f", (r > 0 && d > 0) ? r / d : 0 }')
  RATE[$mode:$name]=$rate
  results+=("$(printf '%-6s %-8s %10s %9s/%-9s %8.1f %8.1f  %-12s %s' "$mode" "$name" "$rate" \
    "$received" "$N" "$(awk -v k="$idle_kb" 'BEGIN{print k/1024}')" \
    "$(awk -v k="$hwm_kb" 'BEGIN{print k/1024}')" "$disc" "$(field "$publine" rate)")")
}

# One subscriber process (bare or python) in one mode.
run_client() {  # mode name cmd...
  local mode=$1 name=$2
  shift 2
  set_limits "$mode"
  local drops_before out t0 publine res
  drops_before=$(buffer_drops)
  out="$dir/$name.$mode.out"
  "$@" 127.0.0.1 "$port" "$N" 2000 >"$out" &
  child=$!
  wait_ready "$out" "$child" || { echo "daemon_run: $name did not subscribe" >&2; exit 1; }
  sleep 0.5
  local idle_kb
  idle_kb=$(vm "$child" VmRSS)
  if [ "$mode" = drain ]; then
    kill -STOP "$child"
    publine=$("$pub" 127.0.0.1 "$port" "$N")
    t0=$(now)
    kill -CONT "$child"
  else
    t0=$(now)
    publine=$("$pub" 127.0.0.1 "$port" "$N")
  fi
  wait "$child" || true
  child=""
  res=$(grep '^received=' "$out")
  local drops=$(($(buffer_drops) - drops_before))
  local disc="no"
  if [ "$(field "$res" disconnected)" = 1 ] || [ "$drops" -gt 0 ]; then
    disc="yes($drops)"
  fi
  record "$mode" "$name" "$(field "$res" received)" "$(field "$res" last)" "$t0" "$idle_kb" \
    "$(field "$res" hwm_kb)" "$disc" "$publine"
}

cat >"$dir/poll.py" <<'EOF'
import http.client, re, sys, time
host, port, n, idle = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
# BASE: the count before the run, when the caller knows it (drain: tierd resumes before
# this script's first request, and may have counted thousands by then).
known_base = int(sys.argv[5]) if len(sys.argv) > 5 else None
pat = re.compile(r'^tierd_events_counted_total\{handler="count",channel_pattern="events:\*"\} (\S+)$', re.M)
conn = http.client.HTTPConnection(host, port, timeout=5)
def get():
    global conn
    try:
        conn.request("GET", "/metrics")
        m = pat.search(conn.getresponse().read().decode())
        return int(float(m.group(1))) if m else 0
    except (http.client.HTTPException, OSError):
        conn.close()
        conn = http.client.HTTPConnection(host, port, timeout=5)
        return None
base = known_base if known_base is not None else (get() or 0)
value, changed, start = base, time.time(), time.time()
while value - base < n:
    v, t = get(), time.time()
    if v is not None and v != value:
        value, changed = v, t
    if t - changed > idle and (value > base or t - start > 30):
        break
    time.sleep(0.01)
print(f"received={value - base} last={changed:.6f}")
EOF

cat >"$dir/tierd.yaml" <<'EOF'
# The dispatch benchmark's tierd: everything on events:* goes to one counting handler.
subscribe: ["events:*"]
handlers:
  - type: count
    name: count
    on: ["events:*"]
EOF

# The same with `validate: when_parsed`: the count handler reads no body, so its messages
# reach it unchecked (tierd-wp in the results).
sed 's/^subscribe:/validate: when_parsed\nsubscribe:/' "$dir/tierd.yaml" >"$dir/tierd-when-parsed.yaml"

run_tierd() {  # mode [name config]
  local mode=$1 name=${2:-tierd} conf=${3:-$dir/tierd.yaml}
  set_limits "$mode"
  local hp drops_before t0 publine res
  hp=$(free_port)
  drops_before=$(buffer_drops)
  TIERD_REDIS_URL="redis://127.0.0.1:$port/0" TIERD_HTTP_LISTEN="127.0.0.1:$hp" \
    TIERD_LOG_LEVEL=warn "$tierd" --config "$conf" >"$dir/$name.$mode.log" 2>&1 &
  child=$!
  for _ in $(seq 200); do
    curl -sf "http://127.0.0.1:$hp/readyz" >/dev/null 2>&1 && break
    kill -0 "$child" 2>/dev/null || { echo "daemon_run: tierd exited:" >&2; cat "$dir/$name.$mode.log" >&2; exit 1; }
    sleep 0.05
  done
  sleep 0.5
  local idle_kb
  idle_kb=$(vm "$child" VmRSS)
  if [ "$mode" = drain ]; then
    kill -STOP "$child"
    publine=$("$pub" 127.0.0.1 "$port" "$N")
    t0=$(now)
    kill -CONT "$child"
    local perf=""
    if [ -n "${PROFILE:-}" ]; then  # PROFILE=PREFIX: perf record of each tierd's drain
      perf record -F 999 -g -o "$PROFILE.$name.data" -p "$child" 2>/dev/null &
      perf=$!
    fi
    res=$($PY "$dir/poll.py" 127.0.0.1 "$hp" "$N" 2 0)  # a fresh tierd: it starts at 0
    [ -n "$perf" ] && { kill -INT "$perf"; wait "$perf" || true; }
  else
    $PY "$dir/poll.py" 127.0.0.1 "$hp" "$N" 2 >"$dir/poll.out" &
    local poller=$!
    sleep 0.2  # the poller has its baseline before the first message
    t0=$(now)
    publine=$("$pub" 127.0.0.1 "$port" "$N")
    wait "$poller"
    res=$(cat "$dir/poll.out")
  fi
  local hwm_kb
  hwm_kb=$(vm "$child" VmHWM)
  local drops=$(($(buffer_drops) - drops_before))
  # tierd may also drop the link itself (e.g. a health-check PING stuck behind the backlog).
  local reconnects
  reconnects=$(curl -s "http://127.0.0.1:$hp/metrics" |
    awk '/^tierd_redis_reconnects_total\{link="subscriber"\}/ { print $2 }')
  reconnects=${reconnects:-0}
  local disc="no"
  if [ "$drops" -gt 0 ] || [ "$reconnects" != 0 ]; then
    disc="yes($drops+${reconnects}r)"
  fi
  kill -TERM "$child"
  wait "$child" || true
  child=""
  record "$mode" "$name" "$(field "$res" received)" "$(field "$res" last)" "$t0" "$idle_kb" \
    "$hwm_kb" "$disc" "$publine"
}

for mode in $MODES; do
  run_client "$mode" bare "$bare"
  run_client "$mode" python $PY "$here/daemon_python_peer.py"
  if [ -x "$tierd" ]; then
    run_tierd "$mode"
    run_tierd "$mode" tierd-wp "$dir/tierd-when-parsed.yaml"
  fi
done

echo "dispatch benchmark: N=$N messages of ~200 B on events:bench, $(nproc) cores, redis $(redis-server --version | awk '{print $3}')"
printf '%-6s %-8s %10s %19s %8s %8s  %-12s %s\n' mode client "msgs/s" "received/N" "idle MB" "peak MB" "disconnected" "publisher msgs/s"
printf '%s\n' "${results[@]}"
ratio() {
  awk -v a="${RATE[$1]:-0}" -v b="${RATE[$2]:-0}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "n/a" }'
}
if [ -x "$tierd" ]; then
  for mode in $MODES; do
    echo "$mode: tierd/bare = $(ratio "$mode:tierd" "$mode:bare") (goal >= 0.9), tierd/python = $(ratio "$mode:tierd" "$mode:python") (goal >= 8), tierd-wp/bare = $(ratio "$mode:tierd-wp" "$mode:bare") (validate: when_parsed)"
  done
else
  echo "tierd: $tierd not built; ratios pending"
fi
