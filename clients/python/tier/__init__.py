"""tier: libtier's contracts from Python (docs/python.md).

Tier keys and TTLs, JSON values, code_hash, publishing with the envelope, invalidation
messages, write-behind, rate limits, quotas and locks, each calling the very Lua files of
core/lua that libtier, tierctl and tierd run.

>>> import tier
>>> tier.code_hash("x = 1\\n") == tier.code_hash("x = 1")
True
"""
from .client import RATE_ALGORITHMS, Client
from .errors import (ConnectionFailed, InvalidArgument, LockLost, LockNotAcquired, RedisError,
                     TierError, Timeout)
from .hashing import code_hash, normalize_code
from .keys import DEFAULT_TTLS, Key, TierName, glob_escape
from .lock import Lock
from .messages import cache_warm, envelope, health_check, invalidation

__version__ = "0.1.0"

__all__ = [
    "Client", "Key", "Lock", "TierName", "DEFAULT_TTLS", "RATE_ALGORITHMS",
    "code_hash", "normalize_code", "glob_escape",
    "envelope", "invalidation", "cache_warm", "health_check",
    "TierError", "InvalidArgument", "ConnectionFailed", "Timeout", "RedisError",
    "LockNotAcquired", "LockLost",
]
