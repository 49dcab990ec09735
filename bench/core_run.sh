#!/usr/bin/env bash
# Runs the libtier benchmarks against a private redis-server and prints a summary table.
# Builds nothing: build first with
#   ninja -C build core_cache_bench core_delete_bench core_hash_bench
# Usage: bench/core_run.sh [BUILD_DIR]   (default: build)
# Environment: REQUESTS (unpipelined requests per run, default 100000),
#              PIPELINED_REQUESTS (default 1000000), CLIENTS (default "1 16"),
#              DELETE_KEYS (default 1000000), HASH_MIB (default 64), REPEAT (default 3).
# Throughput figures are the best of REPEAT runs, alternating libtier and redis-benchmark, so
# that a burst of load from elsewhere on the machine does not decide the ratio.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
bin=$build/bench
for b in core_cache_bench core_delete_bench core_hash_bench; do
  [ -x "$bin/$b" ] || { echo "core_run: $bin/$b not built" >&2; exit 1; }
done
command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null ||
  { echo "core_run: redis-server and redis-benchmark are needed (redis-tools)" >&2; exit 1; }

REQUESTS=${REQUESTS:-100000}
PIPELINED_REQUESTS=${PIPELINED_REQUESTS:-1000000}
CLIENTS=${CLIENTS:-"1 16"}
DELETE_KEYS=${DELETE_KEYS:-1000000}
HASH_MIB=${HASH_MIB:-64}
REPEAT=${REPEAT:-3}
VALUE_BYTES=64
KEYSPACE=100000

. "$here/redis.sh"
bench_redis tier-bench --enable-debug-command yes
echo "redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/') on port $port;" \
  "$(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg)" >&2

rows=()
# redis-benchmark --csv prints "SET","12345.67",...; returns the rps of one test.
rb() {  # test clients pipeline requests
  redis-benchmark -p "$port" -t "$1" -c "$2" -P "$3" -n "$4" -d "$VALUE_BYTES" -r "$KEYSPACE" \
    --csv -q 2>/dev/null | awk -F'"' -v t="${1^^}" '$2 == t { printf "%.0f", $4 }'
}
# A cache SET is "SET key value EX ttl" (the session tier's 300 s here), and a TTL costs
# Redis about an eighth more per SET than a bare SET at -P 32: the peer of a cache SET sends
# the same command, with a value of the same size, so that the ratio measures the client.
TTL=300
ex_value=$(head -c "$VALUE_BYTES" /dev/zero | tr '\0' x)
rb_set_ex() {  # clients pipeline requests
  redis-benchmark -p "$port" -c "$1" -P "$2" -n "$3" -r "$KEYSPACE" --csv -q \
    SET 'key:__rand_int__' "$ex_value" EX "$TTL" 2>/dev/null |
    awk -F'"' '$2 ~ /^SET / { printf "%.0f", $4 }'
}
ours() {  # op clients pipeline requests
  "$bin/core_cache_bench" "$url" "$1" "$2" "$4" "$3" "$VALUE_BYTES" "$KEYSPACE" | awk '{print $5}'
}

best() { sort -n | tail -1; }
row() { printf '%-36s %12s %12s %7s' "$@"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

echo "== cache GET/SET: tier::Client vs redis-benchmark (value $VALUE_BYTES B, keyspace $KEYSPACE, best of $REPEAT)" >&2
for c in $CLIENTS; do
  for p in 1 32; do
    n=$REQUESTS
    [ "$p" -gt 1 ] && n=$PIPELINED_REQUESTS
    # set before get, so that the GETs find values.
    ops="set get"
    # Also Cache::set_text/get_text (key checks and JSON validation, no DOM), and with
    # pipelining the transport alone (tier::raw ops, no key checks or JSON).
    ops="set get textset textget"
    [ "$p" -gt 1 ] && ops="$ops rawset rawget"
    for op in $ops; do
      peer_op=${op#raw}
      peer_op=${peer_op#text}
      peer=$(for _ in $(seq "$REPEAT"); do
        case $op in
          set | textset) rb_set_ex "$c" "$p" "$n" ;;
          *) rb "$peer_op" "$c" "$p" "$n" ;;
        esac
        echo
      done | best)
      mine=$(for _ in $(seq "$REPEAT"); do ours "$op" "$c" "$p" "$n"; done | best)
      label="${peer_op^^} -c $c -P $p"
      case $op in
        raw*) label="$label (raw transport)" ;;
        text*) label="$label (JSON text)" ;;
      esac
      rows+=("$(row "$label" "$mine" "$peer" "$(ratio "$mine" "$peer")")")
      echo "${rows[-1]}" >&2
    done
  done
done

echo "== delete $DELETE_KEYS keys, PING probe every 1 ms" >&2
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }
scan=$("$bin/core_delete_bench" "$url" scan "$DELETE_KEYS")
echo "$scan" >&2
keys=$("$bin/core_delete_bench" "$url" keys "$DELETE_KEYS")
echo "$keys" >&2
idle=$("$bin/core_delete_bench" "$url" idle 1000)
echo "$idle" >&2
for f in total_ms probe_worst_ms probe_p99_ms; do
  a=$(echo "$scan" | field "$f")
  b=$(echo "$keys" | field "$f")
  rows+=("$(row "delete $DELETE_KEYS keys: $f" "$a" "$b" "$(ratio "$a" "$b")")")
done
rows+=("$(row "probe worst/p99 ms, Redis idle" "$(echo "$idle" | field probe_worst_ms)" \
  "$(echo "$idle" | field probe_p99_ms)" "")")

echo "== dedup hashing, $HASH_MIB MiB of code" >&2
hash=$("$bin/core_hash_bench" "$HASH_MIB")
echo "$hash" >&2
a=$(echo "$hash" | field code_hash_mbps)
b=$(echo "$hash" | field evp_sha256_mbps)
rows+=("$(row "code_hash MB/s ($HASH_MIB MiB)" "$a" "$b" "$(echo "$hash" | field ratio)")")

echo
echo "peer: redis-benchmark (ops/s, same -c/-P/-d/-r; for a cache SET the same SET ... EX $TTL) | KEYS + one DEL | OpenSSL EVP SHA-256"
row "benchmark" "libtier" "peer" "ratio"
echo
printf '%s\n' "${rows[@]}"
