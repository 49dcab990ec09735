#!/usr/bin/python3
"""Dispatch benchmark peer: what a Python worker does with redis-py (hiredis parser).

PSUBSCRIBE events:*, json.loads each message, route it by channel to a handler that counts.
Usage: daemon_python_peer.py HOST PORT N [IDLE_MS]
Prints "ready" once subscribed, then:
received=K last=EPOCH_SECONDS disconnected=0|1 rss_kb=.. hwm_kb=..
"""
import json
import sys
import time

import redis
from redis.utils import HIREDIS_AVAILABLE


def main():
    host, port, expected = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    idle = (int(sys.argv[4]) if len(sys.argv) > 4 else 3000) / 1000.0
    if not HIREDIS_AVAILABLE:
        print("python peer: hiredis parser not available", file=sys.stderr)
    counts = {"events:version_promoted": 0, "events:bench": 0}

    def on_promoted(event):
        counts["events:version_promoted"] += 1

    def on_bench(event):
        counts["events:bench"] += 1

    routes = {b"events:version_promoted": on_promoted, b"events:bench": on_bench}

    client = redis.Redis(host=host, port=port)
    pubsub = client.pubsub()
    pubsub.psubscribe("events:*")
    # Wait for the subscription confirmation before saying ready.
    while True:
        m = pubsub.get_message(timeout=1.0)
        if m and m["type"] == "psubscribe":
            break
    print("ready", flush=True)

    received = 0
    last = 0.0
    disconnected = 0
    try:
        while received < expected:
            m = pubsub.get_message(timeout=idle)
            if m is None:
                if received > 0:
                    break
                continue
            if m["type"] != "pmessage":
                continue
            event = json.loads(m["data"])
            handler = routes.get(m["channel"])
            if handler is not None:
                handler(event)
            received += 1
            last = time.time()
    except (redis.ConnectionError, redis.TimeoutError):
        disconnected = 1
    mem = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                mem[key] = int(value.split()[0])
    print(f"received={received} last={last:.6f} disconnected={disconnected} "
          f"rss_kb={mem.get('VmRSS', 0)} hwm_kb={mem.get('VmHWM', 0)}", flush=True)


if __name__ == "__main__":
    main()
