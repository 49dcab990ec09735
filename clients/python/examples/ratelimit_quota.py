#!/usr/bin/python3
"""Rate limits and quotas from Python on tierd's own scripts (docs/ratelimit.md).

The same Lua files libtier and tierctl run, loaded with redis-py's register_script: the keys,
the clock (Redis TIME) and the rules are shared, so a Python app and a C++ service count in
the same limiter. Run: ratelimit_quota.py [REDIS_URL] [KEY_PREFIX]
"""
import json
import pathlib
import sys

import redis

LUA = pathlib.Path(__file__).resolve().parents[3] / "core" / "lua"

url = sys.argv[1] if len(sys.argv) > 1 else "redis://127.0.0.1:6379/0"
prefix = sys.argv[2] if len(sys.argv) > 2 else ""
r = redis.Redis.from_url(url)
ratelimit = r.register_script((LUA / "ratelimit.lua").read_text())
quota = r.register_script((LUA / "quota.lua").read_text())


def check_rate_limit(user_id, limit, window_ms=60000, cost=1):
    """The product's check_rate_limit(user_id, limit): a fixed window."""
    allowed, limit, remaining, retry_after_ms, reset_after_ms = ratelimit(
        keys=[f"{prefix}ratelimit:{{{user_id}}}:requests:{window_ms}"],
        args=["fixed_window", limit, window_ms, "", cost, "0"])
    return {"allowed": bool(allowed), "limit": limit, "remaining": remaining,
            "retry_after_ms": retry_after_ms, "reset_after_ms": reset_after_ms}


def increment_quota(user_id, metric, amount=1, daily_limit=0, monthly_limit=0, enforce=False,
                    channel="system:quota_warning"):
    allowed, day, day_used, day_limit, month, month_used, month_limit, warnings = quota(
        keys=[f"{prefix}quota:{{{user_id}}}:{metric}",
              f"{prefix}ratelimit:{{{user_id}}}:daily_limit",
              f"{prefix}ratelimit:{{{user_id}}}:monthly_limit"],
        args=["incr", amount, daily_limit, monthly_limit, "1" if enforce else "0",
              "0.8,0.9,1", channel, f"{user_id}\n{metric}", "", 86400])
    return {"allowed": bool(allowed),
            "daily": {"period": day.decode(), "used": day_used, "limit": day_limit},
            "monthly": {"period": month.decode(), "used": month_used, "limit": month_limit},
            "warnings": [json.loads(w) for w in warnings]}


if __name__ == "__main__":
    results = [check_rate_limit("py-user", 5) for _ in range(3)]
    assert [x["remaining"] for x in results] == [4, 3, 2], results
    usage = increment_quota("py-user", "api_calls", 85, daily_limit=100, channel="")
    assert usage["daily"]["used"] == 85, usage
    assert [w["threshold"] for w in usage["warnings"]] == [0.8], usage
    print(json.dumps({"ratelimit": results[-1], "quota": usage}))
