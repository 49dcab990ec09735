"""The tier client without a server: code_hash over the shared vectors, key layout and id
checks on hostile input, message builders, the error hierarchy, and packaging."""
from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

import tier
from conftest import REPO


def test_code_hash_matches_the_shared_vectors():
    vectors = json.loads((REPO / "tests" / "vectors" / "code_hash.json").read_text())["vectors"]
    assert len(vectors) >= 5
    for v in vectors:
        assert tier.normalize_code(v["input"]) == v["normalized"], v
        assert tier.code_hash(v["input"]) == v["sha256"], v
        assert tier.code_hash(v["input"].encode()) == v["sha256"]


def test_keys_follow_the_contract():
    c = tier.Client("redis://127.0.0.1:1/0", prefix="app:")
    assert c.session_key("s-1", "prefs") == "app:session:s-1:prefs"
    assert c.project_key("42", "summary") == "app:project:42:summary"
    assert c.global_key("model", "gpt-4", "latency") == "app:model:gpt-4:latency"
    assert c.analysis_key("42", "ab12") == "app:project:42:analysis:ab12"
    assert c.session_key("s", "k").tier is tier.TierName.SESSION
    assert c.ttl_of(c.session_key("s", "k")) == 300
    assert c.ttl_of(c.project_key("p", "k")) == 3600
    assert c.ttl_of(c.global_key("a", "b", "c")) == 86400
    assert c.rate_limit_key("u42") == "app:ratelimit:{u42}:requests:60000"
    assert c.rate_limit_key("u42", "gcra", "api") == "app:ratelimit:{u42}:gcra:api"
    assert c.stream("analysis_results") == "app:writebehind:analysis_results"
    assert tier.glob_escape("a*b?[c]\\") == "a\\*b\\?\\[c\\]\\\\"


@pytest.mark.parametrize("bad, what", [
    ("", "is empty"),
    ("a\x00b", "control character"),
    ("line\nbreak", "control character"),
    ("\x7f", "control character"),
    ("x" * 513, "longer than 512 bytes"),
    ("\udcff", "not valid UTF-8"),
    (b"\xff\xfe", "not valid UTF-8"),
    (42, "must be a string"),
    (None, "must be a string"),
])
def test_hostile_ids_are_refused_before_anything_is_sent(bad, what):
    c = tier.Client("redis://127.0.0.1:1/0")
    with pytest.raises(tier.InvalidArgument, match=what):
        c.session_key(bad, "k")
    with pytest.raises(tier.InvalidArgument, match=what):
        c.project_key("p", bad)


def test_names_and_hash_tags_are_checked():
    c = tier.Client("redis://127.0.0.1:1/0")
    with pytest.raises(tier.InvalidArgument, match="hash tag"):
        c.rate_limit_key("u{1}")
    with pytest.raises(tier.InvalidArgument, match="rate limit name"):
        c.rate_limit_key("u1", name="bad name")
    with pytest.raises(tier.InvalidArgument, match="unknown rate-limit algorithm"):
        c.rate_limit_key("u1", "leaky")
    with pytest.raises(tier.InvalidArgument, match="hash tag"):
        tier.Lock(c, "a}b")
    with pytest.raises(tier.InvalidArgument, match="at least 1 ms"):
        tier.Lock(c, "job", lease=0)
    with pytest.raises(tier.InvalidArgument, match="table"):
        c.stream("robert'); drop table x;--")
    with pytest.raises(tier.InvalidArgument, match="table"):
        c.stream("1abc")
    with pytest.raises(tier.InvalidArgument, match="positive"):
        c.ttl_of(c.session_key("s", "k"), 0)
    with pytest.raises(tier.InvalidArgument, match="session_key"):
        c.set("raw-string-key", 1)  # type: ignore[arg-type]


def test_values_must_be_json():
    c = tier.Client("redis://127.0.0.1:1/0")
    with pytest.raises(tier.InvalidArgument, match="JSON"):
        c.set(c.session_key("s", "k"), {"x": object()})
    with pytest.raises(tier.InvalidArgument, match="JSON"):
        c.set(c.session_key("s", "k"), float("nan"))
    with pytest.raises(tier.InvalidArgument, match="non-empty JSON object"):
        c.enqueue("t", {})
    with pytest.raises(tier.InvalidArgument, match="version"):
        c.enqueue("t", {"id": 1}, version="3")  # type: ignore[arg-type]


def test_message_builders():
    assert tier.invalidation(keys=["a:1"], project_id="42") == {"keys": ["a:1"],
                                                                "project_id": "42"}
    for bad in ["*", "project*:x", ":x", "nocolon", "[a]:b"]:
        with pytest.raises(tier.InvalidArgument, match="literal prefix"):
            tier.invalidation(patterns=[bad])
    with pytest.raises(tier.InvalidArgument, match="needs keys"):
        tier.invalidation()
    with pytest.raises(tier.InvalidArgument, match="control character"):
        tier.invalidation(session_id="s\n1")
    e = tier.envelope({"a": 1}, id="evt-1")
    assert e["id"] == "evt-1" and isinstance(e["ts"], int) and e["a"] == 1
    assert tier.envelope({"ts": 5})["ts"] == 5
    with pytest.raises(tier.InvalidArgument, match="JSON object"):
        tier.envelope([1, 2])  # type: ignore[arg-type]
    assert tier.health_check() == {} and tier.health_check("openai") == {"provider": "openai"}
    assert tier.cache_warm("w", {"project_id": "1"}) == {"warmer": "w",
                                                        "params": {"project_id": "1"}}


def test_an_unreachable_redis_is_connection_failed():
    c = tier.Client("redis://127.0.0.1:1/0", socket_timeout=0.5)
    with pytest.raises(tier.ConnectionFailed) as e:
        c.get(c.session_key("s", "k"))
    assert isinstance(e.value, ConnectionError) and isinstance(e.value, tier.TierError)


def test_installed_with_pip_the_package_carries_the_lua_files(tmp_path):
    # pip from the folder, without fetching anything (setuptools from Debian).
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                        "--no-build-isolation", "--no-index", "--target", str(tmp_path),
                        str(REPO / "clients" / "python")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    installed = tmp_path / "tier"
    assert (installed / "py.typed").is_file()
    for lua in (REPO / "core" / "lua").glob("*.lua"):
        assert (installed / "lua" / lua.name).read_text() == lua.read_text(), lua.name
    probe = subprocess.run(
        [sys.executable, "-c", "import tier, tier._scripts as s; print(s.lua_dir())"],
        capture_output=True, text=True, env={"PYTHONPATH": str(tmp_path)}, cwd=tmp_path)
    assert probe.returncode == 0, probe.stderr
    assert pathlib.Path(probe.stdout.strip()) == installed / "lua"
