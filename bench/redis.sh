# Sourced by the bench scripts: starts a private redis-server on a free port in a temp dir
# and stops it (and removes the dir) when the script exits.
#   bench_redis NAME [redis-server args...]   sets dir, port, redis_pid, url
bench_redis() {
  local name=$1
  shift
  dir=$(mktemp -d "${TMPDIR:-/tmp}/$name.XXXXXX")
  port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly no \
    --daemonize no --logfile "$dir/redis.log" "$@" &
  redis_pid=$!
  trap 'kill "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
  for _ in $(seq 100); do
    redis-cli -p "$port" PING >/dev/null 2>&1 && break
    sleep 0.05  # start-up of a child process: nothing else to poll
  done
  url=redis://127.0.0.1:$port
}
