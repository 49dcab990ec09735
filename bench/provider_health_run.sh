#!/usr/bin/env bash
# Probe overhead: tierd probing N providers (default 200) at 1 s intervals against a local
# HTTP server (Python's threading server, HTTP/1.1 keep-alive, 200 OK), leader lock and
# status writes to a private Redis included. Prints tierd's CPU (user + sys, from /proc) as a
# share of one core over a measured window after a warm-up, the probes the server answered in
# that window, and the goal (< 5 % of a core). Build first: ninja -C build tierd
# Usage: bench/provider_health_run.sh [BUILD_DIR]   Environment: PROVIDERS (200), WARMUP_S (5),
#        WINDOW_S (20), PROFILE (a perf.data path: record tierd over the window).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-$here/../build}" && pwd)
tierd=$build/daemon/tierd
[ -x "$tierd" ] || { echo "provider_health_run: $tierd not built" >&2; exit 1; }
PROVIDERS=${PROVIDERS:-200}
WARMUP_S=${WARMUP_S:-5}
WINDOW_S=${WINDOW_S:-20}
PY=/usr/bin/python3

. "$here/redis.sh"
bench_redis tier-probe-bench
server_pid=""
tierd_pid=""
cleanup() {
  set +e
  [ -n "$tierd_pid" ] && kill -TERM "$tierd_pid" 2>/dev/null && wait "$tierd_pid" 2>/dev/null
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  kill "$redis_pid" 2>/dev/null
  wait "$redis_pid" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT

# The provider side: counts requests, answers 200 with a small JSON body.
cat >"$dir/server.py" <<'PYEOF'
import http.server, sys, threading
count = 0
lock = threading.Lock()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        global count
        with lock:
            count += 1
        body = b'{"status":"ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_HEAD(self):
        self.do_GET()
    def log_message(self, *a):
        pass
class S(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512
s = S(("127.0.0.1", 0), H)
with open(sys.argv[1], "w") as f:
    f.write(str(s.server_address[1]))
def report():
    import signal
    def on_usr1(*_):
        with open(sys.argv[2], "w") as f:
            f.write(str(count))
    signal.signal(signal.SIGUSR1, on_usr1)
report()
s.serve_forever()
PYEOF
$PY "$dir/server.py" "$dir/http.port" "$dir/http.count" &
server_pid=$!
for _ in $(seq 100); do
  [ -s "$dir/http.port" ] && break
  sleep 0.05  # start-up of a child process: nothing else to poll
done
http_port=$(cat "$dir/http.port")
served() { rm -f "$dir/http.count"; kill -USR1 "$server_pid"; for _ in $(seq 100); do [ -s "$dir/http.count" ] && break; sleep 0.01; done; cat "$dir/http.count"; }

{
  echo "redis: {url: \"$url\"}"
  echo "http: {listen: \"127.0.0.1:0\"}"
  echo "log_level: warn"
  echo "handlers:"
  echo "  - type: provider_health"
  echo "    on: [\"system:health_check\"]"
  echo "    providers:"
  for i in $(seq "$PROVIDERS"); do
    echo "      - {name: p$i, url: \"http://127.0.0.1:$http_port/health/$i\", interval_s: 1, timeout_ms: 900}"
  done
} >"$dir/tierd.yaml"
"$tierd" --config "$dir/tierd.yaml" >"$dir/tierd.log" 2>&1 &
tierd_pid=$!

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$tierd_pid/stat"; }
hz=$(getconf CLK_TCK)
sleep "$WARMUP_S"  # the probes settle into their 1 s rhythm
kill -0 "$tierd_pid" || { echo "provider_health_run: tierd exited:" >&2; cat "$dir/tierd.log" >&2; exit 1; }
t0=$(date +%s.%N); c0=$(cpu_ticks); s0=$(served)
if [ -n "${PROFILE:-}" ]; then  # PROFILE=FILE: perf record of tierd over the window
  perf record --call-graph dwarf -F 499 -p "$tierd_pid" -o "$PROFILE" -- sleep "$WINDOW_S" 2>/dev/null &
fi
sleep "$WINDOW_S"  # the measured window
t1=$(date +%s.%N); c1=$(cpu_ticks); s1=$(served)
keys=$(redis-cli -p "$port" --scan --pattern 'provider:*:health_status' | wc -l)
rss=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$tierd_pid/status")

awk -v c0="$c0" -v c1="$c1" -v hz="$hz" -v t0="$t0" -v t1="$t1" -v s0="$s0" -v s1="$s1" \
  -v n="$PROVIDERS" -v keys="$keys" -v rss="$rss" 'BEGIN {
  secs = t1 - t0
  cpu = (c1 - c0) / hz / secs * 100
  printf "providers %d at 1 s; window %.1f s; probes answered %d (%.1f/s, expected %d/s)\n", n, secs, s1 - s0, (s1 - s0) / secs, n
  printf "status keys %d; tierd RSS %.1f MB\n", keys, rss / 1024
  printf "tierd CPU %.2f %% of one core (%.1f us per probe); goal < 5 %%: %s\n", cpu, (c1 - c0) / hz / (s1 - s0) * 1e6, cpu < 5 ? "met" : "NOT met"
}'
