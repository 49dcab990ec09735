"""Python and tierd/tierctl agree on every contract, both ways, on the suite's real Redis and
PostgreSQL and the real binaries: keys and values, code hashes, publishing (a Python message
handled by tierd's invalidate handler), write-behind rows in PostgreSQL, rate-limit counts
shared with tierctl, a quota threshold crossed from Python raising tierd's alert, and locks
that exclude each other across Python and `tierctl lock run`."""
from __future__ import annotations

import json
import subprocess
import threading
import time

import pytest

import tier
from conftest import REPO, eventually

WRITE_BEHIND = """\
  - type: write_behind
    on: ["system:write_behind_flush"]
    tables:
      - {name: py_rows, key_columns: [id], columns: [payload], version_column: version,
         max_delay_ms: 20}
"""
INVALIDATE = """\
  - type: invalidate
    on: ["system:cache_invalidation"]
"""
QUOTA_ALERTS = """\
  - type: quota_alerts
    on: ["system:quota_warning"]
"""


def test_values_written_by_python_read_by_tierctl_and_back(client, tierctl):
    for tier_name, key, args in [
        ("session", client.session_key("s-1", "prefs"), ["s-1", "prefs"]),
        ("project", client.project_key("p-42", "summary"), ["p-42", "summary"]),
        ("global", client.global_key("model", "gpt-4", "latency"), ["model", "gpt-4", "latency"]),
    ]:
        value = {"tier": tier_name, "unicode": "café ✓", "n": [1, 2.5, None, True]}
        client.set(key, value)
        assert json.loads(tierctl("get", "--tier", tier_name, *args).stdout) == value
        assert 0 < client.redis.ttl(key) <= client.ttls[key.tier]
        tierctl("set", "--tier", tier_name, *args, json.dumps({"from": "tierctl"}))
        assert client.get(key) == {"from": "tierctl"}
    # mset from Python, mget from tierctl; missing keys are None on both sides.
    a, b = client.project_key("p-1", "a"), client.project_key("p-1", "b")
    client.mset({a: {"v": 1}, b: "two"})
    out = tierctl("mget", "--tier", "project", "p-1", "a", "b", "missing").stdout.splitlines()
    assert [json.loads(x) for x in out[:2]] == [{"v": 1}, "two"]
    assert client.mget([a, b, client.project_key("p-1", "missing")]) == [{"v": 1}, "two", None]
    tierctl("del", "--tier", "project", "p-1", "a")
    assert client.get(a) is None


def test_code_hashes_agree_with_tierctl(tmp_path, tierctl):
    vectors = json.loads((REPO / "tests" / "vectors" / "code_hash.json").read_text())["vectors"]
    for i, v in enumerate(vectors):
        f = tmp_path / f"code{i}.py"
        f.write_bytes(v["input"].encode("utf-8"))
        assert tierctl("dedup-hash", str(f)).stdout.split()[0] == tier.code_hash(v["input"])


def test_an_analysis_cached_by_python_is_found_under_the_same_key(client, tierctl):
    code = "def f(x):\r\n    return x  \r\n\r\n"
    h = client.cache_analysis_result(code, {"score": 0.9}, "p-9")
    assert client.get_cached_analysis("def f(x):\n    return x", "p-9") == {"score": 0.9}
    assert json.loads(tierctl("get", "--tier", "project", "p-9", f"analysis:{h}").stdout) == {
        "score": 0.9}


def test_a_python_invalidation_is_handled_by_tierd(client, tierd_factory):
    tierd_factory(INVALIDATE)
    keys = [client.project_key("42", "summary"), client.project_key("42", "analysis:ab"),
            client.project_key("43", "summary"), client.session_key("s-7", "prefs")]
    for k in keys:
        client.set(k, 1)
    client.publish("system:cache_invalidation",
                   tier.invalidation(patterns=["project:42:*"], session_id="s-7"), id="inv-1")
    eventually(lambda: client.mget(keys) == [None, None, 1, None], what="tierd's deletion")


def test_a_tierctl_publish_reaches_a_python_subscriber_as_json(client, tierctl):
    sub = client.redis.pubsub(ignore_subscribe_messages=True)
    sub.subscribe("events:py_interop")
    try:
        tierctl("publish", "events:py_interop", '{"id":"e-1","version":3}')
        msg = eventually(lambda: sub.get_message(timeout=0.1), what="the message")
        assert json.loads(msg["data"]) == {"id": "e-1", "version": 3}
        # And Python's publish carries the envelope.
        client.publish("events:py_interop", {"version": 4}, id="e-2")
        got = json.loads(eventually(lambda: sub.get_message(timeout=0.1), what="it")["data"])
        assert got["id"] == "e-2" and got["version"] == 4 and isinstance(got["ts"], int)
    finally:
        sub.close()


def test_python_write_behind_rows_reach_postgresql_through_tierd(client, pg, tierctl,
                                                                  tierd_factory):
    with pg.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS py_rows; CREATE TABLE py_rows("
                    "id text PRIMARY KEY, payload jsonb, version bigint)")
    tierd_factory(WRITE_BEHIND)

    def row(id_):
        with pg.cursor() as cur:
            cur.execute("SELECT payload, version FROM py_rows WHERE id = %s", (id_,))
            return cur.fetchone()

    client.enqueue("py_rows", {"id": "a", "payload": {"from": "python"}}, version=1)
    eventually(lambda: row("a") == ({"from": "python"}, 1), what="row a")
    # The cache value and the row in one step (core/lua/write_behind.lua).
    key = client.project_key("p-1", "doc:b")
    client.write_behind(key, {"cached": True}, "py_rows",
                        {"id": "b", "payload": {"from": "write_behind"}}, version=2)
    assert client.get(key) == {"cached": True}
    eventually(lambda: row("b") == ({"from": "write_behind"}, 2), what="row b")
    # An older version never overwrites a newer one; a delete removes the row.
    client.enqueue("py_rows", {"id": "a", "payload": {"from": "stale"}}, version=0)
    client.enqueue("py_rows", {"id": "a", "payload": {"from": "python v3"}}, version=3)
    eventually(lambda: row("a") == ({"from": "python v3"}, 3), what="row a v3")
    client.delete_row("py_rows", {"id": "b"}, version=5)
    eventually(lambda: row("b") is None, what="row b deleted")
    # And back: tierctl enqueues, the row lands the same way.
    tierctl("wb", "enqueue", "py_rows", '{"id":"c","payload":{"from":"tierctl"}}', "--version", "1")
    eventually(lambda: row("c") == ({"from": "tierctl"}, 1), what="row c")


def test_rate_limit_counts_are_shared_with_tierctl(client, tierctl):
    for algo in tier.RATE_ALGORITHMS:
        window = "1h"
        got = [client.check("u-rl", 5, 3600_000, algorithm=algo)["remaining"] for _ in range(2)]
        got += [tierctl.json("ratelimit", "check", "u-rl", "--algo", algo, "--limit", "5",
                             "--window", window)["remaining"] for _ in range(2)]
        got.append(client.check("u-rl", 5, 3600_000, algorithm=algo)["remaining"])
        assert got == [4, 3, 2, 1, 0], (algo, got)
        denied = client.check("u-rl", 5, 3600_000, algorithm=algo)
        assert not denied["allowed"] and denied["retry_after_ms"] > 0, algo
        status = tierctl("ratelimit", "status", "u-rl", "--algo", algo, "--limit", "5",
                         "--window", window, check=False)
        assert status.returncode == 5, (algo, status.stdout)  # denied, and nothing consumed
        assert client.status("u-rl", 5, 3600_000, algorithm=algo)["remaining"] == 0


def test_quota_usage_is_shared_and_a_threshold_from_python_raises_tierds_alert(
        client, tierctl, tierd_factory):
    tierd_factory(QUOTA_ALERTS)
    user = f"qu-{client.prefix[2:-1]}"
    sub = client.redis.pubsub(ignore_subscribe_messages=True)
    sub.subscribe(f"notifications:user:{user}")
    try:
        tierctl("quota", "incr", user, "api_calls", "70", "--daily-limit", "100")
        usage = client.increment(user, "api_calls", 15, daily_limit=100)
        assert usage["daily"]["used"] == 85
        assert [w["threshold"] for w in usage["warnings"]] == [0.8]
        note = json.loads(eventually(lambda: sub.get_message(timeout=0.1),
                                     what="tierd's notification")["data"])
        assert note["data"]["user_id"] == user and note["data"]["threshold"] == 0.8
        assert note["kind"] and note["id"]
        assert tierctl.json("quota", "usage", user, "api_calls")["daily"]["used"] == 85
        refused = client.increment(user, "api_calls", 20, daily_limit=100, enforce=True)
        assert not refused["allowed"] and refused["daily"]["used"] == 85
    finally:
        sub.close()


def test_a_python_lock_and_tierctl_lock_run_exclude_each_other(client, tierctl, tmp_path):
    with client.lock("py-cli", lease=2) as held:
        assert held.fence >= 1
        r = tierctl("lock", "run", "py-cli", "--wait", "100ms", "--", "true", check=False)
        assert r.returncode == 6, r.stderr  # not acquired: the command never ran
        status = tierctl.json("lock", "status", "py-cli")
        assert status["held"] and status["last_fence"] == held.fence
        first = held.fence
    # tierctl holds it while its command runs; Python is refused, then gets it after.
    marker = tmp_path / "inside"
    proc = subprocess.Popen(
        [tierctl.path, "--redis", tierctl.redis_url, "--prefix", tierctl.prefix, "lock", "run",
         "py-cli", "--lease", "2s", "--", "sh", "-c",
         f'echo "$TIER_LOCK_FENCE" > {marker}; sleep 1'])
    try:
        eventually(lambda: marker.exists() and marker.read_text().strip(), what="the command")
        cli_fence = int(marker.read_text())
        assert cli_fence > first
        with pytest.raises(tier.LockNotAcquired):
            client.lock("py-cli", lease=2)
        later = client.lock("py-cli", lease=2, wait=10)  # woken by tierctl's release notice
        assert later.fence > cli_fence
        later.release()
    finally:
        assert proc.wait(timeout=20) == 0


def test_a_renewed_python_lock_outlives_its_lease_and_a_lost_one_says_so(client):
    with client.lock("py-renew", lease=0.3) as held:
        end = time.monotonic() + 1.2  # four leases: the renewer keeps it all along
        while time.monotonic() < end:
            assert held.held and not held.lost
            assert client.redis.pttl(client.key("lock:{py-renew}")) > 0
            time.sleep(0.05)
        assert client.redis.get(client.key("lock:{py-renew}")).decode() == held.token
    lost = threading.Event()
    lk = client.lock("py-taken", lease=0.3, on_lost=lambda _: lost.set())
    # Another holder takes it over (as after a pause past the lease): the renewal is
    # refused and the loss reported at once.
    client.redis.set(client.key("lock:{py-taken}"), "someone-else", px=5000)
    assert lost.wait(2)
    assert lk.lost and not lk.held
    with pytest.raises(tier.LockLost):
        lk.check()
    assert lk.release() is False  # never releases what it lost
    assert client.redis.get(client.key("lock:{py-taken}")) == b"someone-else"
