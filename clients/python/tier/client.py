"""The tier client: libtier's contracts from Python, on redis-py.

Example::

    import tier

    client = tier.Client("redis://127.0.0.1:6379/0")
    key = client.project_key("42", "summary")           # project:42:summary, 1 h TTL
    client.set(key, {"files": 12, "score": 0.93})
    assert client.get(key) == {"files": 12, "score": 0.93}
    client.publish("system:cache_invalidation", tier.invalidation(project_id="42"))
"""
from __future__ import annotations

import json
from typing import Any, Callable, Iterable, Mapping, Sequence

import redis

from . import _scripts, messages
from .errors import InvalidArgument, RedisError, mapped
from .hashing import code_hash
from .keys import (DEFAULT_TTLS, Key, TierName, check_id, check_name, check_tagged_id)
from .lock import Lock

RATE_ALGORITHMS = ("fixed_window", "sliding_log", "sliding_counter", "token_bucket",
                   "leaky_bucket", "gcra")
_TABLE_PART = r"[A-Za-z_][A-Za-z0-9_]{0,62}"


def _decode(v: Any) -> Any:
    return v.decode("utf-8") if isinstance(v, bytes) else v


def _check_table(table: str) -> str:
    import re

    if not isinstance(table, str) or not re.fullmatch(rf"{_TABLE_PART}(\.{_TABLE_PART})?", table):
        raise InvalidArgument(
            f"table '{table}': [schema.]name of letters, digits and '_' (not leading digit)")
    return table


def _json_text(value: Any, what: str) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise InvalidArgument(f"{what} is not JSON-serialisable: {e}") from None


class Client:
    """Tier keys and TTLs, JSON values, publishing, write-behind, rate limits, quotas and
    locks, each on the same key layout and the same ``core/lua`` scripts as libtier.

    ``target`` is a Redis URL or a ``redis.Redis``; ``prefix`` is the namespace put before
    every key (tierd's ``namespace``). ``ttls`` overrides the tiers' default TTLs (seconds).
    """

    def __init__(self, target: str | redis.Redis = "redis://127.0.0.1:6379/0", *,
                 prefix: str = "", ttls: Mapping[TierName, int] | None = None,
                 socket_timeout: float = 2.0) -> None:
        if isinstance(target, redis.Redis):
            self.redis = target
        else:
            self.redis = redis.Redis.from_url(target, socket_timeout=socket_timeout,
                                              socket_connect_timeout=socket_timeout)
        if prefix:
            check_id(prefix, "prefix")
        self.prefix = prefix
        self.ttls = {**DEFAULT_TTLS, **(ttls or {})}
        self._scripts: dict[str, Any] = {}

    # --- keys ------------------------------------------------------------------------------
    def key(self, raw: str) -> str:
        """``raw`` with the namespace prefix."""
        return self.prefix + raw

    def session_key(self, session_id: str, key: str) -> Key:
        """``session:{session_id}:{key}`` (TTL 300 s)."""
        return Key(self.prefix + f"session:{check_id(session_id, 'session_id')}:"
                   f"{check_id(key, 'key')}", TierName.SESSION)

    def project_key(self, project_id: str, key: str) -> Key:
        """``project:{project_id}:{key}`` (TTL 3600 s)."""
        return Key(self.prefix + f"project:{check_id(project_id, 'project_id')}:"
                   f"{check_id(key, 'key')}", TierName.PROJECT)

    def global_key(self, type: str, identifier: str, metric: str) -> Key:
        """``{type}:{identifier}:{metric}`` (TTL 86400 s)."""
        return Key(self.prefix + f"{check_id(type, 'type')}:{check_id(identifier, 'identifier')}:"
                   f"{check_id(metric, 'metric')}", TierName.GLOBAL)

    def analysis_key(self, project_id: str, hash: str) -> Key:
        """``project:{project_id}:analysis:{code_hash}``, the dedup key of an analysis."""
        return self.project_key(project_id, "analysis:" + check_id(hash, "code_hash"))

    def ttl_of(self, key: Key, ttl: int | None = None) -> int:
        """The TTL to write: ``ttl`` or the key's tier default; refused unless positive."""
        t = self.ttls[key.tier] if ttl is None else ttl
        if not isinstance(t, int) or isinstance(t, bool) or t <= 0:
            raise InvalidArgument(f"ttl for key '{key}' must be a positive number of seconds")
        return t

    @staticmethod
    def _tier_key(key: Any) -> Key:
        if not isinstance(key, Key):
            raise InvalidArgument("use a key from session_key/project_key/global_key, "
                                  f"not {type(key).__name__}")
        return key

    # --- values ----------------------------------------------------------------------------
    def get(self, key: Key) -> Any:
        """The JSON value at ``key``, or None when it is missing."""
        with mapped():
            raw = self.redis.get(self._tier_key(key))
        return None if raw is None else self._parse(key, raw)

    def set(self, key: Key, value: Any, ttl: int | None = None) -> None:
        """Stores ``value`` as JSON with the tier's TTL (or ``ttl`` seconds)."""
        text = _json_text(value, f"value for '{key}'")
        with mapped():
            self.redis.set(self._tier_key(key), text, ex=self.ttl_of(key, ttl))

    def mget(self, keys: Sequence[Key]) -> list[Any]:
        """Values of ``keys`` in one MGET (None for each missing one)."""
        keys = [self._tier_key(k) for k in keys]
        if not keys:
            return []
        with mapped():
            raws = self.redis.mget(keys)
        return [None if r is None else self._parse(k, r) for k, r in zip(keys, raws)]

    def mset(self, items: Mapping[Key, Any] | Iterable[tuple[Key, Any]],
             ttl: int | None = None) -> None:
        """Stores every (key, value) with its tier's TTL, pipelined in one round trip."""
        pairs = list(items.items()) if isinstance(items, Mapping) else list(items)
        encoded = [(self._tier_key(k), _json_text(v, f"value for '{k}'")) for k, v in pairs]
        pipe = self.redis.pipeline(transaction=False)
        for k, text in encoded:
            pipe.set(k, text, ex=self.ttl_of(k, ttl))
        with mapped():
            pipe.execute()

    def delete(self, *keys: Key) -> int:
        """Deletes ``keys`` (UNLINK); returns how many existed."""
        if not keys:
            return 0
        with mapped():
            return int(self.redis.unlink(*[self._tier_key(k) for k in keys]))

    @staticmethod
    def _parse(key: str, raw: bytes) -> Any:
        try:
            return json.loads(raw)
        except ValueError as e:
            raise RedisError(f"value at '{key}' is not JSON: {e}") from None

    # --- dedup -----------------------------------------------------------------------------
    def cache_analysis_result(self, code: str | bytes, result: Any, project_id: str,
                              ttl: int | None = None) -> str:
        """Caches ``result`` under the analysis key of ``code``; returns its code_hash."""
        h = code_hash(code)
        self.set(self.analysis_key(project_id, h), result, ttl)
        return h

    def get_cached_analysis(self, code: str | bytes, project_id: str) -> Any:
        """The cached analysis of ``code`` (after normalisation), or None."""
        return self.get(self.analysis_key(project_id, code_hash(code)))

    # --- pub/sub ---------------------------------------------------------------------------
    def publish(self, channel: str, payload: Mapping[str, Any], id: str | None = None) -> int:
        """Publishes ``payload`` with the envelope (``id`` when given, ``ts``); returns how
        many subscribers got it. Pub/sub is at-most-once: what must not be lost goes
        through write-behind instead."""
        text = messages.encode(messages.envelope(payload, id=id))
        with mapped():
            return int(self.redis.publish(check_id(channel, "channel"), text))

    # --- write-behind ----------------------------------------------------------------------
    def stream(self, table: str) -> str:
        """``writebehind:{table}``, the stream tierd's write_behind handler reads."""
        return self.key("writebehind:" + _check_table(table))

    @staticmethod
    def _row(table: str, row: Mapping[str, Any]) -> str:
        if not isinstance(row, Mapping) or not row:
            raise InvalidArgument(f"write-behind row for table '{table}' must be a non-empty "
                                  "JSON object")
        text = _json_text(dict(row), f"write-behind row for table '{table}'")
        if len(text.encode("utf-8", errors="surrogatepass")) > 1 << 20:
            raise InvalidArgument(f"write-behind row for table '{table}' is over 1 MiB")
        return text

    @staticmethod
    def _version(version: int | None) -> str:
        if version is None:
            return ""
        if not isinstance(version, int) or isinstance(version, bool):
            raise InvalidArgument("version must be an integer")
        return str(version)

    def enqueue(self, table: str, row: Mapping[str, Any], version: int | None = None) -> str:
        """Appends an upsert of ``row`` for tierd to write to PostgreSQL; returns the entry id."""
        fields = {"op": "upsert", "row": self._row(table, row)}
        if version is not None:
            fields["version"] = self._version(version)
        with mapped():
            return _decode(self.redis.xadd(self.stream(table), fields))

    def delete_row(self, table: str, key_row: Mapping[str, Any],
                   version: int | None = None) -> str:
        """Appends a delete of the row with ``key_row``'s key columns; returns the entry id."""
        fields = {"op": "delete", "row": self._row(table, key_row)}
        if version is not None:
            fields["version"] = self._version(version)
        with mapped():
            return _decode(self.redis.xadd(self.stream(table), fields))

    def write_behind(self, key: Key, value: Any, table: str, row: Mapping[str, Any],
                     version: int | None = None, ttl: int | None = None) -> str:
        """Sets the cache ``value`` and appends ``row`` in one atomic step
        (core/lua/write_behind.lua): the cache never holds a value whose persistence was not
        queued. Returns the stream entry id."""
        args = [_json_text(value, f"value for '{key}'"), self.ttl_of(self._tier_key(key), ttl),
                "upsert", self._row(table, row), self._version(version)]
        with mapped():
            return _decode(self._script("write_behind")(keys=[key, self.stream(table)],
                                                        args=args))

    # --- rate limits -----------------------------------------------------------------------
    def rate_limit_key(self, user_id: str, algorithm: str = "fixed_window",
                       name: str = "requests", window_ms: int = 60000) -> str:
        """The limiter's key: ``ratelimit:{user}:<name>:<window_ms>`` for fixed_window,
        ``ratelimit:{user}:<algorithm>:<name>`` for the others."""
        user = check_tagged_id(user_id, "user_id")
        check_name(name, "rate limit name")
        if algorithm not in RATE_ALGORITHMS:
            raise InvalidArgument(f"unknown rate-limit algorithm '{algorithm}' "
                                  f"({', '.join(RATE_ALGORITHMS)})")
        if algorithm == "fixed_window":
            return self.key(f"ratelimit:{{{user}}}:{name}:{int(window_ms)}")
        return self.key(f"ratelimit:{{{user}}}:{algorithm}:{name}")

    def check(self, user_id: str, limit: int, window_ms: int = 60000, *,
              algorithm: str = "fixed_window", name: str = "requests", burst: int = 0,
              cost: int = 1, peek: bool = False) -> dict[str, Any]:
        """Checks (and unless ``peek``, consumes) ``cost`` from a limiter; the same answer as
        libtier's RateLimiter::check:
        ``{"allowed", "limit", "remaining", "retry_after_ms", "reset_after_ms"}``."""
        for v, what in ((limit, "limit"), (window_ms, "window_ms"), (cost, "cost")):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise InvalidArgument(f"{what} must be an integer >= 1")
        key = self.rate_limit_key(user_id, algorithm, name, window_ms)
        with mapped():
            allowed, lim, remaining, retry, reset = self._script("ratelimit")(
                keys=[key], args=[algorithm, limit, window_ms, burst or "", cost,
                                  "1" if peek else "0"])
        return {"allowed": allowed == 1, "limit": lim, "remaining": remaining,
                "retry_after_ms": retry, "reset_after_ms": reset}

    def status(self, user_id: str, limit: int, window_ms: int = 60000, **kw: Any) -> dict[str, Any]:
        """What a request would get now, consuming nothing (``check(..., peek=True)``)."""
        return self.check(user_id, limit, window_ms, peek=True, **kw)

    # --- quotas ----------------------------------------------------------------------------
    def _quota(self, action: str, user_id: str, metric: str, amount: int, daily_limit: int,
               monthly_limit: int, enforce: bool, thresholds: Sequence[float],
               channel: str | None, retention_s: int) -> dict[str, Any]:
        user = check_tagged_id(user_id, "user_id")
        check_name(metric, "metric")
        for v, what in ((amount, "amount"), (daily_limit, "daily_limit"),
                        (monthly_limit, "monthly_limit")):
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise InvalidArgument(f"{what} must be an integer >= 0")
        keys = [self.key(f"quota:{{{user}}}:{metric}"),
                self.key(f"ratelimit:{{{user}}}:daily_limit"),
                self.key(f"ratelimit:{{{user}}}:monthly_limit")]
        args = [action, amount, daily_limit, monthly_limit, "1" if enforce else "0",
                ",".join(f"{t:g}" for t in thresholds), channel or "", f"{user}\n{metric}", "",
                retention_s]
        with mapped():
            allowed, day, d_used, d_limit, month, m_used, m_limit, warnings = \
                self._script("quota")(keys=keys, args=args)
        return {"allowed": allowed == 1,
                "daily": {"period": _decode(day), "used": d_used, "limit": d_limit},
                "monthly": {"period": _decode(month), "used": m_used, "limit": m_limit},
                "warnings": [json.loads(w) for w in warnings]}

    def increment(self, user_id: str, metric: str, amount: int = 1, *, daily_limit: int = 0,
                  monthly_limit: int = 0, enforce: bool = False,
                  thresholds: Sequence[float] = (0.8, 0.9, 1.0),
                  channel: str | None = messages.QUOTA_WARNING,
                  retention_s: int = 86400) -> dict[str, Any]:
        """Adds ``amount`` to today's and this month's usage (UTC, Redis TIME). With
        ``enforce``, an increment that would pass a limit is refused and nothing is counted.
        Crossing a threshold of a limit publishes one warning on ``channel`` (tierd's
        quota_alerts handler turns it into notifications), once per period and threshold."""
        return self._quota("incr", user_id, metric, amount, daily_limit, monthly_limit,
                           enforce, thresholds, channel, retention_s)

    def usage(self, user_id: str, metric: str, *, daily_limit: int = 0,
              monthly_limit: int = 0) -> dict[str, Any]:
        """Today's and this month's usage and limits, changing nothing."""
        return self._quota("usage", user_id, metric, 0, daily_limit, monthly_limit, False, (),
                           None, 86400)

    # --- locks -----------------------------------------------------------------------------
    def lock(self, name: str, lease: float = 30.0, wait: float = 0.0,
             on_lost: Callable[[Lock], None] | None = None) -> Lock:
        """A lock to use in ``with``: acquired on entry (waiting up to ``wait`` seconds),
        renewed while held, released on exit. ``lock.fence`` is its fencing token."""
        lk = Lock(self, name, lease, on_lost)
        lk.acquire(wait)
        return lk

    # --- scripts ---------------------------------------------------------------------------
    def _script(self, name: str) -> Any:
        s = self._scripts.get(name)
        if s is None:
            s = self._scripts[name] = self.redis.register_script(_scripts.source(name))
        return s
