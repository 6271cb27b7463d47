"""A per-client limit on failed authentications, in this API process's memory.

Each client address has a leaky bucket: a 401 adds 1 to its level, which drains at
per_minute / 60 a second. While one more failure would pass per_minute, the client's keyed
requests are answered 429 before its key is looked up, so guessing keys (or flooding Redis with
lookups) is capped per address. Memory stays bounded: at most MAX_CLIENTS addresses are tracked,
the least recently failing forgotten first.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict

MAX_CLIENTS = 10_000


class FailedAuthLimiter:
    def __init__(self, per_minute: int, clock=time.monotonic):
        self.per_minute = per_minute
        self._per_second = per_minute / 60
        self._clock = clock
        self._levels: OrderedDict[str, tuple[float, float]] = OrderedDict()
        # Sync routes authenticate in the thread pool, async ones on the event loop.
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> int | None:
        """Seconds until this client may fail again, or None when it is not blocked."""
        if self.per_minute <= 0:
            return None
        with self._lock:
            level = self._level(client, self._clock())
        excess = level + 1 - self.per_minute
        return max(1, math.ceil(excess / self._per_second)) if excess > 0 else None

    def failed(self, client: str) -> None:
        if self.per_minute <= 0:
            return
        with self._lock:
            now = self._clock()
            self._levels[client] = (self._level(client, now) + 1, now)
            self._levels.move_to_end(client)
            while len(self._levels) > MAX_CLIENTS:
                self._levels.popitem(last=False)

    def _level(self, client: str, now: float) -> float:
        level, at = self._levels.get(client, (0.0, now))
        return max(0.0, level - (now - at) * self._per_second)
