#!/usr/bin/python3
"""A lock with a fencing token from Python, on tierd's own script (docs/locks.md).

core/lua/lock.lua, loaded with redis-py's register_script: the same keys (lock:{name} and
lock:{name}:fence), tokens and fences as libtier and `tierctl lock run`.
Run: lock_example.py [REDIS_URL] [KEY_PREFIX]
"""
import pathlib
import secrets
import sys

import redis

LUA = pathlib.Path(__file__).resolve().parents[3] / "core" / "lua"

url = sys.argv[1] if len(sys.argv) > 1 else "redis://127.0.0.1:6379/0"
prefix = sys.argv[2] if len(sys.argv) > 2 else ""
r = redis.Redis.from_url(url)
lock_script = r.register_script((LUA / "lock.lua").read_text())


def keys(name):
    return [f"{prefix}lock:{{{name}}}", f"{prefix}lock:{{{name}}}:fence"]


def try_acquire(name, lease_ms=10_000):
    """(token, fence) when acquired, else None."""
    token = secrets.token_hex(16)
    acquired, fence, _ = lock_script(keys=keys(name), args=["acquire", token, lease_ms])
    return (token, fence) if acquired else None


def release(name, token):
    return lock_script(keys=keys(name), args=["release", token, 0,
                                              f"{prefix}lock:{{{name}}}:released"]) == 1


if __name__ == "__main__":
    held = try_acquire("py-job")
    assert held, "the lock should be free"
    assert try_acquire("py-job") is None, "a second holder must be refused"
    token, fence = held
    assert not release("py-job", "not-the-token"), "a wrong token must not release"
    assert release("py-job", token)
    again = try_acquire("py-job")
    assert again and again[1] > fence, "fencing tokens only grow"
    print(again[1])
