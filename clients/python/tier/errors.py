"""The errors the client raises: one small hierarchy, like libtier's ErrorKind.

    TierError
    ├── InvalidArgument   bad input, refused before anything is sent (also a ValueError)
    ├── ConnectionFailed  Redis could not be reached, or the link broke (also a ConnectionError)
    ├── Timeout           Redis did not answer within the deadline (also a TimeoutError)
    ├── RedisError        Redis answered with an error (a script refused its arguments, ...)
    ├── LockNotAcquired   the lock stayed held by another holder past the wait
    └── LockLost          a held lock was lost (taken over, or not renewed within its lease)

Example::

    try:
        client.set(client.session_key("s-1", "prefs"), {"theme": "dark"})
    except tier.InvalidArgument as e:   # e.g. a control character in the session id
        print(e)
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import redis


class TierError(Exception):
    """Base of every error the tier client raises."""


class InvalidArgument(TierError, ValueError):
    """Bad input, refused before anything was sent; the message names the argument."""


class ConnectionFailed(TierError, ConnectionError):
    """Redis could not be reached, or the connection broke mid-command."""


class Timeout(TierError, TimeoutError):
    """Redis did not answer within the deadline."""


class RedisError(TierError):
    """Redis answered with an error reply (e.g. a script refused its arguments)."""


class LockNotAcquired(TierError):
    """The lock was still held by another holder when the wait ran out."""


class LockLost(TierError):
    """A held lock was lost: taken over, or not renewed before its lease ended."""


@contextlib.contextmanager
def mapped() -> Iterator[None]:
    """Turns redis-py's exceptions into the hierarchy above (the cause is kept)."""
    try:
        yield
    except redis.exceptions.TimeoutError as e:
        raise Timeout(f"redis: {e}") from e
    except redis.exceptions.ConnectionError as e:
        raise ConnectionFailed(f"redis: {e}") from e
    except redis.exceptions.ResponseError as e:
        raise RedisError(f"redis: {e}") from e
    except redis.exceptions.RedisError as e:
        raise RedisError(f"redis: {e}") from e
