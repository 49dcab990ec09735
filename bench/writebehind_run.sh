#!/usr/bin/env bash
# Write-behind benchmark: tierd's worker against PostgreSQL's own ceiling and a naive Python
# peer, on the same ~200-byte rows, with a private redis-server and PostgreSQL 15.
# Builds nothing: build first with  ninja -C build writebehind_bench
# Usage: bench/writebehind_run.sh [BUILD_DIR]   (default: build)
# Environment: ROWS (default 200000), BATCH (worker max_rows, default 5000),
#              PYTHON (an interpreter with Debian's python3-redis/psycopg2, default /usr/bin/python3),
#              NAIVE_ROWS (rows the naive peer writes, default 20000).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
bench=$build/bench/writebehind_bench
[ -x "$bench" ] || { echo "writebehind_run: $bench not built" >&2; exit 1; }
ROWS=${ROWS:-200000}
BATCH=${BATCH:-5000}
NAIVE_ROWS=${NAIVE_ROWS:-20000}
PYTHON=${PYTHON:-/usr/bin/python3}
PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}

dir=$(mktemp -d "${TMPDIR:-/tmp}/wb-bench.XXXXXX")
chmod 755 "$dir"
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
  as_pg=(runuser -u postgres --)
  mkdir -p "$dir/pg" && chown postgres "$dir/pg"
fi
redis_port=$(free_port)
pg_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly no \
  --daemonize no --logfile "$dir/redis.log" &
redis_pid=$!
"${as_pg[@]}" "$PG_BIN/initdb" -D "$dir/pg/data" -U postgres --auth=trust -E UTF8 --locale=C \
  --no-sync >/dev/null
# Same settings as the test harness: durability off for every contender alike.
"${as_pg[@]}" "$PG_BIN/postgres" -D "$dir/pg/data" -p "$pg_port" -k "$dir/pg" \
  -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
  -c full_page_writes=off >"$dir/postgres.log" 2>&1 &
pg_pid=$!
cleanup() {
  kill "$redis_pid" 2>/dev/null || true
  # runuser does not pass signals on: stop the postmaster itself (fast shutdown).
  [ -f "$dir/pg/data/postmaster.pid" ] && kill -INT "$(head -1 "$dir/pg/data/postmaster.pid")" 2>/dev/null
  kill -INT "$pg_pid" 2>/dev/null || true
  wait "$redis_pid" "$pg_pid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
for _ in $(seq 200); do
  redis-cli -p "$redis_port" PING >/dev/null 2>&1 &&
    psql -h 127.0.0.1 -p "$pg_port" -U postgres -Atc 'SELECT 1' >/dev/null 2>&1 && break
  sleep 0.05  # start-up of child processes: nothing else to poll
done
url=redis://127.0.0.1:$redis_port
conninfo="host=127.0.0.1 port=$pg_port user=postgres dbname=postgres"
psql -q -h 127.0.0.1 -p "$pg_port" -U postgres -f "$here/../scripts/demo_schema.sql"
echo "redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), postgres" \
  "$("$PG_BIN/postgres" --version | awk '{print $3}'), $(nproc) CPUs," \
  "load $(cut -d' ' -f1-3 /proc/loadavg); rows=$ROWS batch=$BATCH" >&2
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }
reset() {
  redis-cli -p "$redis_port" DEL writebehind:analysis_results >/dev/null
  psql -q -h 127.0.0.1 -p "$pg_port" -U postgres -c 'TRUNCATE analysis_results'
}

ceiling=$("$bench" ceiling "$conninfo" "$ROWS" "$BATCH")
echo "$ceiling" >&2

reset
"$bench" preload "$url" "$ROWS" >&2
worker=$("$bench" worker "$url" "$conninfo" "$ROWS" "$BATCH")
echo "$worker" >&2
landed=$(psql -h 127.0.0.1 -p "$pg_port" -U postgres -Atc 'SELECT count(*) FROM analysis_results')
left=$(redis-cli -p "$redis_port" XLEN writebehind:analysis_results)

reset
live=$("$bench" live "$url" "$conninfo" "$ROWS" "$BATCH")
echo "$live" >&2

reset
"$bench" preload "$url" "$NAIVE_ROWS" >&2
naive=$("$PYTHON" "$here/writebehind_naive.py" "$url" "postgresql://postgres@127.0.0.1:$pg_port/postgres" "$NAIVE_ROWS")
echo "$naive" >&2

w=$(echo "$worker" | field rows_per_s)
l=$(echo "$live" | field rows_per_s)
c1=$(echo "$ceiling" | field copy_one_txn_rows_per_s)
cb=$(echo "$ceiling" | field copy_batched_rows_per_s)
vb=$(echo "$ceiling" | field values_batched_rows_per_s)
n=$(echo "$naive" | field rows_per_s)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
printf '\n%-52s %12s\n' "write-behind, $ROWS rows of ~200 B" "rows/s"
printf '%-52s %12s\n' "tierd worker, pre-loaded backlog (batch $BATCH)" "$w"
printf '%-52s %12s\n' "tierd worker, backlog arriving live (XADD producer)" "$l"
printf '%-52s %12s\n' "PostgreSQL ceiling: COPY staging + upsert, one txn" "$c1"
printf '%-52s %12s\n' "PostgreSQL: COPY staging + upsert, $BATCH rows/txn" "$cb"
printf '%-52s %12s\n' "PostgreSQL: multi-row VALUES upsert, $BATCH rows/txn" "$vb"
printf '%-52s %12s\n' "naive Python peer (row per txn, $NAIVE_ROWS rows)" "$n"
printf '%-52s %12s\n' "worker / ceiling (one txn) (goal >= 0.8)" "$(ratio "$w" "$c1")"
printf '%-52s %12s\n' "worker / naive (goal >= 10)" "$(ratio "$w" "$n")"
printf '%-52s %12s\n' "worker peak RSS (KiB)" "$(echo "$worker" | field rss_peak_kib)"
printf '%-52s %12s\n' "rows in PostgreSQL / entries left in the stream" "$landed / $left"
