"""Distributed locks with fencing tokens on core/lua/lock.lua (docs/locks.md).

The same keys (``lock:{name}`` and ``lock:{name}:fence``), tokens and fences as libtier and
``tierctl lock run``, so a Python job and a shell job exclude each other.

Example::

    with client.lock("nightly-report", lease=30, wait=5) as held:
        write_report(fence=held.fence)      # PostgreSQL: UPDATE ... WHERE fence < %(fence)s
        if held.lost:                       # the lease ran out without a renewal
            ...

A renewer thread extends the lease every third of it. A renewal that is refused, or that
cannot reach Redis before the lease would end by this process's clock, marks the lock lost
at once (``lost`` is set and ``on_lost`` is called); no renewal outlives ``release()``.
"""
from __future__ import annotations

import random
import secrets
import threading
import time
from typing import TYPE_CHECKING, Callable

import redis

from .errors import LockLost, LockNotAcquired, mapped
from .errors import InvalidArgument
from .keys import check_tagged_id

if TYPE_CHECKING:
    from .client import Client


class Lock:
    """One lock held (or to be held) by this process."""

    def __init__(self, client: "Client", name: str, lease: float = 30.0,
                 on_lost: Callable[["Lock"], None] | None = None) -> None:
        self.name = check_tagged_id(name, "lock name")
        if not isinstance(lease, (int, float)) or lease * 1000 < 1:
            raise InvalidArgument("lock lease must be at least 1 ms")
        self._client = client
        self._lease_ms = int(lease * 1000)
        self._keys = [client.key(f"lock:{{{self.name}}}"), client.key(f"lock:{{{self.name}}}:fence")]
        self._channel = client.key(f"lock:{{{self.name}}}:released")
        self._script = client._script("lock")
        self.token = secrets.token_hex(16)
        self.fence = 0
        self.lost = False
        self.on_lost = on_lost
        self._held = False
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._valid_until = 0.0

    # --- acquiring -------------------------------------------------------------------------
    def try_acquire(self) -> bool:
        """One attempt, no wait: True when this process now holds the lock."""
        sent = time.monotonic()
        with mapped():
            ok, fence, _ = self._script(keys=self._keys,
                                        args=["acquire", self.token, self._lease_ms])
        if ok != 1:
            return False
        self._on_acquired(int(fence), sent)
        return True

    def acquire(self, wait: float = 0.0) -> "Lock":
        """Takes the lock, waiting up to ``wait`` seconds (backoff with jitter, woken early by
        a release notice). Raises LockNotAcquired when it is still held elsewhere."""
        deadline = time.monotonic() + max(0.0, wait)
        if self.try_acquire():
            return self
        if wait <= 0:
            raise LockNotAcquired(f"lock '{self.name}' is held by another holder")
        pubsub = self._client.redis.pubsub(ignore_subscribe_messages=True)
        try:
            with mapped():
                pubsub.subscribe(self._channel)
            delay = 0.01
            while True:
                if self.try_acquire():
                    return self
                left = deadline - time.monotonic()
                if left <= 0:
                    raise LockNotAcquired(
                        f"lock '{self.name}' still held by another holder after {wait:g} s")
                pause = min(left, delay * (0.5 + random.random()))
                with mapped():
                    pubsub.get_message(timeout=pause)  # a release notice ends the pause early
                delay = min(delay * 2, 0.5)
        finally:
            pubsub.close()

    def _on_acquired(self, fence: int, sent: float) -> None:
        self.fence = fence
        self.lost = False
        self._held = True
        self._valid_until = sent + self._lease_ms / 1000
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew, name=f"tier-lock-{self.name}",
                                         daemon=True)
        self._renewer.start()

    # --- holding ---------------------------------------------------------------------------
    @property
    def held(self) -> bool:
        """True while the lock is held and not known to be lost."""
        return self._held and not self.lost

    def _renew(self) -> None:
        period = self._lease_ms / 3000
        pause = period
        while not self._stop.wait(pause):
            sent = time.monotonic()
            if sent >= self._valid_until:
                self._lose()
                return
            try:
                extended = self._script(keys=self._keys,
                                        args=["extend", self.token, self._lease_ms])
            except redis.exceptions.RedisError:
                # Again soon, but never past the lease's end by our clock.
                pause = max(0.0, min(period, self._valid_until - time.monotonic()))
                continue
            if self._stop.is_set():
                return
            if extended != 1:
                self._lose()  # taken over, or expired
                return
            self._valid_until = sent + self._lease_ms / 1000
            pause = period

    def _lose(self) -> None:
        if self._stop.is_set():
            return
        self.lost = True
        if self.on_lost is not None:
            self.on_lost(self)

    def check(self) -> None:
        """Raises LockLost if the lock was lost; call it before a write that needs it."""
        if self.lost:
            raise LockLost(f"lock '{self.name}' was lost (fence {self.fence})")

    # --- releasing -------------------------------------------------------------------------
    def release(self) -> bool:
        """Stops renewing, then releases (a lock already lost is left alone). True when this
        holder released it. Safe to call twice."""
        if not self._held:
            return False
        self._stop.set()
        if self._renewer is not None and self._renewer is not threading.current_thread():
            self._renewer.join()
        self._held = False
        if self.lost:
            return False
        with mapped():
            return self._script(keys=self._keys,
                                args=["release", self.token, 0, self._channel]) == 1

    def __enter__(self) -> "Lock":
        if not self._held:
            self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:
        stop = getattr(self, "_stop", None)  # absent when __init__ refused its arguments
        if stop is not None:
            stop.set()
