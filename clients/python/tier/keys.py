"""Key layout and id checks shared with libtier and tierd (docs/contracts.md).

An id from a user must be non-empty, at most 512 bytes of UTF-8, and free of control
characters; anything else is refused before a command is sent, as libtier does.
"""
from __future__ import annotations

import re
from enum import Enum

MAX_ID_BYTES = 512
_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


class TierName(str, Enum):
    """The three cache tiers and their default TTLs (seconds)."""

    SESSION = "session"
    PROJECT = "project"
    GLOBAL = "global"


DEFAULT_TTLS = {TierName.SESSION: 300, TierName.PROJECT: 3600, TierName.GLOBAL: 86400}


class Key(str):
    """A full Redis key (namespace prefix included) that knows its tier.

    It is a ``str``, so it can go straight to redis-py as well.
    """

    tier: TierName

    def __new__(cls, value: str, tier: TierName) -> "Key":
        k = super().__new__(cls, value)
        k.tier = tier
        return k


def _excerpt(s: str, limit: int = 80) -> str:
    out = "".join(c if 0x20 <= ord(c) != 0x7F else f"\\x{ord(c):02x}" for c in s[:limit])
    return out + ("..." if len(s) > limit else "")


def check_id(value: object, what: str) -> str:
    """Returns ``value`` if it is a valid id, else raises InvalidArgument naming ``what``."""
    from .errors import InvalidArgument

    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidArgument(f"{what} is not valid UTF-8") from None
    if not isinstance(value, str):
        raise InvalidArgument(f"{what} must be a string, not {type(value).__name__}")
    if not value:
        raise InvalidArgument(f"{what} is empty")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidArgument(f"{what} is not valid UTF-8: '{_excerpt(value)}'") from None
    if size > MAX_ID_BYTES:
        raise InvalidArgument(f"{what} is longer than {MAX_ID_BYTES} bytes")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise InvalidArgument(f"{what} contains a control character: '{_excerpt(value)}'")
    return value


def check_tagged_id(value: object, what: str) -> str:
    """An id that goes between literal braces (a hash tag): no '{' or '}'."""
    from .errors import InvalidArgument

    v = check_id(value, what)
    if "{" in v or "}" in v:
        raise InvalidArgument(f"{what} '{_excerpt(v)}' must not contain '{{' or '}}' (hash tag)")
    return v


def check_name(value: object, what: str) -> str:
    """A limiter, quota metric or similar name: 1-64 of letters, digits, '_', '-', '.'."""
    from .errors import InvalidArgument

    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise InvalidArgument(
            f"{what} '{_excerpt(str(value))}': 1 to 64 letters, digits, '_', '-' or '.'")
    return value


def glob_escape(s: str) -> str:
    """Escapes SCAN/PSUBSCRIBE glob characters (* ? [ ] \\) so ``s`` matches only itself."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", s)
