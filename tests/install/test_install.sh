#!/usr/bin/env bash
# cmake --install as a packager runs it, then an outside project that does
# find_package(tier) and links tier::client against the install tree, built and run against
# a real Redis. Also: what each binary needs at run time (its NEEDED entries): an app of
# the blocking client, tierctl included, must not pull in libuv, libpq or spdlog.
#   test_install.sh BUILD_DIR SOURCE_DIR [CXX_FLAGS [LINKER_FLAGS]]
# (the flags libtier was built with, e.g. the sanitizers, for the outside project too)
set -euo pipefail
build="$1"
src="$2"
cxx_flags="${3:-}"
linker_flags="${4:-}"
work="$(mktemp -d)"
redis_pid=""
cleanup() {
  [ -z "$redis_pid" ] || kill "$redis_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# A private redis-server on a unix socket in the scratch dir (no port to find).
redis-server --port 0 --unixsocket "$work/redis.sock" --save '' --appendonly no \
  --dir "$work" >"$work/redis.log" 2>&1 &
redis_pid=$!
for _ in $(seq 1 100); do
  [ -S "$work/redis.sock" ] && break
  sleep 0.05
done
[ -S "$work/redis.sock" ] || fail "redis-server did not start: $(cat "$work/redis.log")"
redis_url="unix://$work/redis.sock"

cmake --install "$build" --prefix "$work/prefix" >"$work/install.log" || {
  cat "$work/install.log"; fail "cmake --install"; }
for f in bin/tierd bin/tierctl lib/libtier_core.a lib/libtier_client.a lib/libtier_uv.a \
  lib/libtier_pg.a include/tier/cache.hpp include/tier/sync/client.hpp \
  include/tier/uv/async_client.hpp lib/cmake/tier/tierConfig.cmake; do
  [ -e "$work/prefix/$f" ] || fail "not installed: $f"
done
echo "ok: installed binaries, headers, libraries and the package"

cmake -S "$src/tests/install/consumer" -B "$work/consumer" -G Ninja \
  -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_CXX_FLAGS="$cxx_flags" \
  -DCMAKE_EXE_LINKER_FLAGS="$linker_flags" >"$work/configure.log" 2>&1 || {
  cat "$work/configure.log"; fail "configuring a find_package(tier) project"; }
cmake --build "$work/consumer" >"$work/build.log" 2>&1 || {
  cat "$work/build.log"; fail "building a project that links tier::client"; }
"$work/consumer/consumer" "$redis_url" || fail "the consumer did not run against Redis"
echo "ok: find_package(tier) + tier::client, built and run"

needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'; }
for bin in "$work/consumer/consumer" "$work/prefix/bin/tierctl"; do
  libs="$(needed "$bin")"
  for banned in libuv libpq libspdlog; do
    if echo "$libs" | grep -q "^$banned"; then
      fail "$(basename "$bin") needs $banned: $(echo $libs)"
    fi
  done
  echo "ok: $(basename "$bin") needs $(echo $libs)"
done
# The check itself must see a library where there is one.
needed "$work/prefix/bin/tierd" | grep -q '^libuv' || fail "readelf saw no libuv in tierd"
