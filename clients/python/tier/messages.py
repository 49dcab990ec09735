"""Messages other apps publish for tierd (docs/contracts.md#channels, docs/handlers.md).

A message is a JSON object; the optional envelope fields are ``id`` (tierd de-duplicates on
it where a handler has ``dedup_ttl_s``) and ``ts`` (unix milliseconds).
"""
from __future__ import annotations

import json
import re
import time
from typing import Any, Iterable, Mapping

from .errors import InvalidArgument
from .keys import check_id

CACHE_INVALIDATION = "system:cache_invalidation"
CACHE_WARM = "system:cache_warm"
HEALTH_CHECK = "system:health_check"
QUOTA_WARNING = "system:quota_warning"
WRITE_BEHIND_FLUSH = "system:write_behind_flush"
MAX_MESSAGE_BYTES = 1 << 20  # tierd's default max_message_bytes

_GLOB = re.compile(r"[*?\[\\]")


def envelope(payload: Mapping[str, Any], id: str | None = None,
             ts_ms: int | None = None) -> dict[str, Any]:
    """``payload`` with the envelope fields: ``id`` if given, ``ts`` (now) unless present.

    >>> envelope({"project_id": "42"}, id="evt-1", ts_ms=5)
    {'project_id': '42', 'id': 'evt-1', 'ts': 5}
    """
    if not isinstance(payload, Mapping):
        raise InvalidArgument(f"a message must be a JSON object, not {type(payload).__name__}")
    out = dict(payload)
    if id is not None:
        out["id"] = check_id(id, "message id")
    out.setdefault("ts", int(time.time() * 1000) if ts_ms is None else ts_ms)
    return out


def encode(payload: Mapping[str, Any]) -> str:
    """The message as compact JSON text, refused when tierd would refuse it for size."""
    try:
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise InvalidArgument(f"message is not JSON-serialisable: {e}") from None
    if len(text.encode("utf-8", errors="surrogatepass")) > MAX_MESSAGE_BYTES:
        raise InvalidArgument(f"message is larger than {MAX_MESSAGE_BYTES} bytes")
    return text


def _safe_pattern(p: str) -> bool:
    glob = _GLOB.search(p)
    colon = p.find(":")
    return colon > 0 and (glob is None or colon < glob.start())


def invalidation(keys: Iterable[str] = (), patterns: Iterable[str] = (),
                 session_id: str | None = None, project_id: str | None = None) -> dict[str, Any]:
    """A ``system:cache_invalidation`` message for tierd's invalidate handler.

    Keys and patterns are given without the namespace prefix (tierd adds its own). A pattern
    must start with a literal prefix ending in ':' (``project:42:*``), so no message asks for
    ``*``; ``session_id`` / ``project_id`` drop every key of that session or project.

    >>> invalidation(patterns=["project:42:analysis:*"], session_id="s-1")
    {'patterns': ['project:42:analysis:*'], 'session_id': 's-1'}
    """
    msg: dict[str, Any] = {}
    keys = [check_id(k, "keys[]") for k in keys]
    patterns = [check_id(p, "patterns[]") for p in patterns]
    for p in patterns:
        if not _safe_pattern(p):
            raise InvalidArgument(
                f"pattern '{p}' must start with a literal prefix ending in ':' "
                "(e.g. 'project:42:*')")
    if keys:
        msg["keys"] = keys
    if patterns:
        msg["patterns"] = patterns
    if session_id is not None:
        msg["session_id"] = check_id(session_id, "session_id")
    if project_id is not None:
        msg["project_id"] = check_id(project_id, "project_id")
    if not msg:
        raise InvalidArgument("an invalidation needs keys, patterns, session_id or project_id")
    return msg


def cache_warm(warmer: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A ``system:cache_warm`` message: run one of tierd's warmers now."""
    return {"warmer": check_id(warmer, "warmer"), "params": dict(params or {})}


def health_check(provider: str | None = None) -> dict[str, Any]:
    """A ``system:health_check`` message: tierd's leader probes one provider (or all) now."""
    return {} if provider is None else {"provider": check_id(provider, "provider")}
