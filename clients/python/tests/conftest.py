"""Fixtures for the tier client's tests.

The interop tests need the suite's servers and binaries, given by the CTest wrapper
(tests/python) in the environment: TIER_TEST_REDIS_URL, TIER_TEST_PG_URL, TIERD_PATH and
TIERCTL_PATH. Without them those tests are skipped (the unit tests still run); under CTest
they are always set, so nothing is skipped there.
"""
from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

import pytest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the package from the repository

import tier  # noqa: E402

REPO = HERE.parents[2]


def need(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.skip(f"{name} is not set (run through CTest: tests/python)")
    return value


def eventually(predicate, timeout: float = 10.0, what: str = "condition"):
    """Polls ``predicate`` until it returns something truthy or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def prefix() -> str:
    return f"py{uuid.uuid4().hex[:10]}:"


@pytest.fixture
def redis_url() -> str:
    return need("TIER_TEST_REDIS_URL")


@pytest.fixture
def client(redis_url: str, prefix: str):
    c = tier.Client(redis_url, prefix=prefix)
    yield c
    for k in c.redis.scan_iter(match=tier.glob_escape(prefix) + "*", count=1000):
        c.redis.unlink(k)
    c.redis.close()


@pytest.fixture
def pg():
    import psycopg2

    conn = psycopg2.connect(need("TIER_TEST_PG_URL"))
    conn.autocommit = True
    yield conn
    conn.close()


class Tierctl:
    def __init__(self, path: str, redis_url: str, prefix: str) -> None:
        self.path, self.redis_url, self.prefix = path, redis_url, prefix

    def __call__(self, *args: str, check: bool = True, json_out: bool = False,
                 timeout: float = 20.0) -> subprocess.CompletedProcess:
        argv = [self.path, "--redis", self.redis_url, "--prefix", self.prefix]
        argv += ["--json"] if json_out else []
        r = subprocess.run(argv + list(args), capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"tierctl {' '.join(args)}: exit {r.returncode}: {r.stderr}")
        return r

    def json(self, *args: str, **kw) -> dict:
        return json.loads(self(*args, json_out=True, **kw).stdout)


@pytest.fixture
def tierctl(redis_url: str, prefix: str) -> Tierctl:
    return Tierctl(need("TIERCTL_PATH"), redis_url, prefix)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Tierd:
    """The real tierd on the suite's Redis and PostgreSQL, in this test's namespace."""

    def __init__(self, path: str, redis_url: str, pg_url: str, prefix: str,
                 handlers: str) -> None:
        self.dir = tempfile.TemporaryDirectory(prefix="tier-py-")
        self.port = free_port()
        config = pathlib.Path(self.dir.name) / "tierd.yaml"
        config.write_text(
            f'redis:\n  url: "{redis_url}"\nhttp:\n  listen: 127.0.0.1:{self.port}\n'
            f'namespace: "{prefix}"\nshutdown_timeout_ms: 3000\nhandlers:\n{handlers}')
        self.log = pathlib.Path(self.dir.name) / "tierd.log"
        env = dict(os.environ, TIERD_POSTGRES_URL=pg_url)
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen([path, "--config", str(config)], stdout=out,
                                         stderr=subprocess.STDOUT, env=env)
        eventually(self.ready, 15, "tierd /readyz")

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except OSError:
            return 0, ""

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"tierd exited {self.proc.returncode}: {self.log.read_text()}")
        return self.get("/readyz")[0] == 200

    def stop(self) -> tuple[int, str]:
        """SIGTERM; the exit status and the log."""
        self.proc.terminate()
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        log = self.log.read_text(errors="replace")
        self.dir.cleanup()
        return code, log


@pytest.fixture
def tierd_factory(redis_url: str, prefix: str):
    started = []

    def start(handlers: str) -> Tierd:
        t = Tierd(need("TIERD_PATH"), redis_url, need("TIER_TEST_PG_URL"), prefix, handlers)
        started.append(t)
        return t

    yield start
    for t in started:
        code, log = t.stop()
        assert code == 0, log
