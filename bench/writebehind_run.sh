#!/usr/bin/env bash
# Write-behind benchmark: tierd's worker against PostgreSQL's own ceiling and a naive Python
# peer, on the same ~200-byte rows, with a private redis-server and PostgreSQL 15.
# Builds nothing: build first with  ninja -C build writebehind_bench
# Usage: bench/writebehind_run.sh [BUILD_DIR]   (default: build)
# Environment: ROWS (default 200000), BATCH (worker max_rows, default 5000),
#              PYTHON (an interpreter with Debian's python3-redis/psycopg2, default /usr/bin/python3),
#              NAIVE_ROWS (rows the naive peer writes, default 20000),
#              PGSTATS=1 (where PostgreSQL spent the worker run, from pg_stat_statements),
#              PROFILE=FILE (perf record of the worker run into FILE),
#              HEAPTRACK=FILE (heaptrack of the worker run),
#              PIN=1 (PostgreSQL alone on CPU 0; Redis, the worker and the ceiling's client on
#              CPU 1: what the worker costs shows apart from PostgreSQL's own work).
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
pg_cpu=() app_cpu=()
if [ "${PIN:-0}" = 1 ]; then
  [ "$(nproc)" -ge 2 ] || { echo "writebehind_run: PIN=1 needs 2 CPUs" >&2; exit 1; }
  pg_cpu=(taskset -c 0) app_cpu=(taskset -c 1)
fi

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
"${app_cpu[@]}" redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly no \
  --daemonize no --logfile "$dir/redis.log" &
redis_pid=$!
"${as_pg[@]}" "$PG_BIN/initdb" -D "$dir/pg/data" -U postgres --auth=trust -E UTF8 --locale=C \
  --no-sync >/dev/null
# Same settings as the test harness: durability off for every contender alike.
pg_extra=()
[ "${PGSTATS:-0}" = 1 ] && pg_extra=(-c shared_preload_libraries=pg_stat_statements)
"${pg_cpu[@]}" "${as_pg[@]}" "$PG_BIN/postgres" -D "$dir/pg/data" -p "$pg_port" -k "$dir/pg" \
  -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
  -c full_page_writes=off "${pg_extra[@]}" >"$dir/postgres.log" 2>&1 &
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
  "load $(cut -d' ' -f1-3 /proc/loadavg); rows=$ROWS batch=$BATCH pin=${PIN:-0}" >&2
# PGSTATS=1: where PostgreSQL spent a run (pg_stat_statements), against its wall time when
# known.
pgstats_reset() {
  [ "${PGSTATS:-0}" = 1 ] || return 0
  psql -q -h 127.0.0.1 -p "$pg_port" -U postgres -c 'SET client_min_messages = warning' \
    -c 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements' \
    -c 'SELECT pg_stat_statements_reset()' >/dev/null
}
pgstats_print() {  # what ran, its output line (with seconds=) or "" when it has no one wall time
  [ "${PGSTATS:-0}" = 1 ] || return 0
  local wall_ms
  wall_ms=$(echo "$2" | field seconds | awk '{ printf "%.0f", $1 * 1000 }')
  echo "PostgreSQL during the $1${wall_ms:+ (${wall_ms} ms of wall time)}:" >&2
  psql -h 127.0.0.1 -p "$pg_port" -U postgres -P pager=off -c "
    SELECT sum(calls) AS calls, round(sum(total_exec_time)::numeric, 1) AS total_ms,
           ${wall_ms:+round((100 * sum(total_exec_time) / $wall_ms)::numeric, 1) AS pct_of_wall,}
           left(regexp_replace(regexp_replace(query, '\s+', ' ', 'g'), 'wb_stage_[0-9]+', 'wb_stage'), 70)
             AS statement
    FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat_statements%'
    GROUP BY statement ORDER BY 2 DESC LIMIT 12" >&2
  [ -n "$wall_ms" ] || return 0
  psql -h 127.0.0.1 -p "$pg_port" -U postgres -Atc "
    SELECT 'PostgreSQL busy ' || round((100 * sum(total_exec_time) / $wall_ms)::numeric, 1) ||
           '% of the $1'
    FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat_statements%'" >&2
}
redis_cpu() {  # seconds of CPU redis-server has used
  redis-cli -p "$redis_port" INFO cpu | awk -F: '/^used_cpu_(sys|user):/ { s += $2 } END { print s }'
}
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }
reset() {
  redis-cli -p "$redis_port" DEL writebehind:analysis_results >/dev/null
  psql -q -h 127.0.0.1 -p "$pg_port" -U postgres -c 'TRUNCATE analysis_results'
}

pgstats_reset
ceiling=$("${app_cpu[@]}" "$bench" ceiling "$conninfo" "$ROWS" "$BATCH")
echo "$ceiling" >&2
pgstats_print "ceiling's three runs" ""
reset
sqlonly=$("${app_cpu[@]}" "$bench" sqlonly "$conninfo" "$ROWS" "$BATCH")
echo "$sqlonly" >&2

reset
"$bench" preload "$url" "$ROWS" >&2
pgstats_reset
prof=()
[ -n "${PROFILE:-}" ] && prof=(perf record -F 999 -g -o "$PROFILE" --)  # PROFILE=FILE: the worker run
[ -n "${HEAPTRACK:-}" ] && prof=(heaptrack -o "$HEAPTRACK")  # HEAPTRACK=FILE: allocations of the worker run
redis_cpu0=$(redis_cpu)
worker=$("${prof[@]}" "${app_cpu[@]}" "$bench" worker "$url" "$conninfo" "$ROWS" "$BATCH")
echo "$worker" >&2
redis_us_per_row=$(awk -v a="$redis_cpu0" -v b="$(redis_cpu)" -v n="$ROWS" 'BEGIN { printf "%.2f", (b - a) * 1e6 / n }')
landed=$(psql -h 127.0.0.1 -p "$pg_port" -U postgres -Atc 'SELECT count(*) FROM analysis_results')
left=$(redis-cli -p "$redis_port" XLEN writebehind:analysis_results)
pgstats_print "worker run" "$worker"

reset
live=$("${app_cpu[@]}" "$bench" live "$url" "$conninfo" "$ROWS" "$BATCH")
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
printf '%-52s %12s\n' "the worker's SQL alone, through PgConn (sqlonly)" "$(echo "$sqlonly" | field rows_per_s)"
printf '%-52s %12s\n' "naive Python peer (row per txn, $NAIVE_ROWS rows)" "$n"
printf '%-52s %12s\n' "worker / ceiling (one txn) (goal >= 0.8)" "$(ratio "$w" "$c1")"
printf '%-52s %12s\n' "worker / naive (goal >= 10)" "$(ratio "$w" "$n")"
printf '%-52s %12s\n' "worker peak RSS (KiB)" "$(echo "$worker" | field rss_peak_kib)"
printf '%-52s %12s\n' "CPU per row (us): worker / redis-server" \
  "$(echo "$worker" | field cpu_us_per_row) / $redis_us_per_row"
printf '%-52s %12s\n' "rows in PostgreSQL / entries left in the stream" "$landed / $left"
