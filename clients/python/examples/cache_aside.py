#!/usr/bin/python3
"""Cache-aside from Python on tierd's own script (docs/patterns.md).

core/lua/cache_aside.lua, loaded with redis-py's register_script: the entry layout (a hash,
field v), the single-flight lease and XFetch are shared with libtier and tierctl fetch, so a
Python app and a C++ service never both load the same cold key.
Run: cache_aside.py [REDIS_URL] [KEY]
"""
import json
import math
import pathlib
import random
import secrets
import sys
import threading
import time

import redis

LUA = pathlib.Path(__file__).resolve().parents[3] / "core" / "lua"

url = sys.argv[1] if len(sys.argv) > 1 else "redis://127.0.0.1:6379/0"
key = sys.argv[2] if len(sys.argv) > 2 else "project:p-42:report"
r = redis.Redis.from_url(url)
aside = r.register_script((LUA / "cache_aside.lua").read_text())


def cache_aside(key, loader, ttl_ms=3600_000, lease_ms=10_000, wait_s=5.0, beta=1.0):
    token = secrets.token_hex(16)
    deadline = time.monotonic() + wait_s
    while True:
        draw = 1.0 - random.random()  # (0, 1]: XFetch's draw
        kind, *rest = aside(keys=[key], args=["lookup", token, lease_ms, beta, draw, 0, 0])
        if kind == b"hit":
            return json.loads(rest[0])
        if kind == b"wait" and time.monotonic() < deadline:
            time.sleep(0.02)  # another caller is loading it
            continue
        # load, refresh (this caller holds the lease), or waited long enough: load here
        start = time.monotonic()
        try:
            value = loader()
        except Exception:
            aside(keys=[key], args=["release", token])
            raise
        took_ms = int((time.monotonic() - start) * 1000)
        aside(keys=[key], args=["store", token, json.dumps(value), ttl_ms, took_ms])
        return value


if __name__ == "__main__":
    loads = []

    def slow_report():
        loads.append(1)
        time.sleep(0.2)  # the expensive computation
        return {"report": "p-42", "rows": 3}

    results = []
    threads = [threading.Thread(target=lambda: results.append(cache_aside(key, slow_report)))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(loads) == 1, loads
    assert all(x == {"report": "p-42", "rows": 3} for x in results), results
    print(json.dumps(results[0]))
