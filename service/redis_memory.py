"""Redis memory headroom: new submissions are refused above a high-water mark of maxmemory, so
Redis (noeviction) keeps room for the writes that finish, cancel and expire jobs.

INFO memory is read at most once a READ_INTERVAL_SECONDS, so the submit path pays one extra
round trip a second, not one a request."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import redis

READ_INTERVAL_SECONDS = 1.0
RETRY_AFTER_SECONDS = 30
MIB = 1024 * 1024


@dataclass(frozen=True)
class MemoryReading:
    used: int
    maxmemory: int

    def over(self, high_water: float) -> bool:
        return self.maxmemory > 0 and self.used >= high_water * self.maxmemory

    def describe(self, high_water: float) -> str:
        return (
            f"Redis uses {self.used / MIB:.1f} MiB of its maxmemory {self.maxmemory / MIB:.1f} "
            f"MiB ({self.used / self.maxmemory:.0%}); new jobs are refused from "
            f"{high_water:.0%} (MOCHI_REDIS_HIGH_WATER) until finished jobs expire"
        )


class MemoryGuard:
    """Made on the server's event loop (its lock belongs to that loop)."""

    def __init__(self, client, high_water: float, clock=time.monotonic):
        self.client = client
        self.high_water = high_water
        self._clock = clock
        self._lock = asyncio.Lock()
        self._read_at = -float("inf")
        self._reading: MemoryReading | None = None

    async def refusal(self) -> str | None:
        """Why a new submission must wait, or None."""
        reading = await self._current()
        if reading is None or not reading.over(self.high_water):
            return None
        return reading.describe(self.high_water)

    async def _current(self) -> MemoryReading | None:
        if not self._stale():
            return self._reading
        async with self._lock:
            if self._stale():  # another request may have read it while this one waited
                self._reading = await self._read()
                self._read_at = self._clock()
        return self._reading

    def _stale(self) -> bool:
        return self._clock() - self._read_at >= READ_INTERVAL_SECONDS

    async def _read(self) -> MemoryReading | None:
        try:
            info = await self.client.info("memory")
        except redis.RedisError:
            return None  # Redis unreachable: the submission meets that itself (503)
        return MemoryReading(counted_memory(info), int(info.get("maxmemory", 0)))


def counted_memory(info: dict) -> int:
    """used_memory as Redis weighs it against maxmemory: without the AOF and replica buffers
    (mem_not_counted_for_evict), which swell for a moment while a busy disk delays the AOF
    write and would otherwise refuse jobs on a spike Redis itself ignores."""
    return int(info["used_memory"]) - int(info.get("mem_not_counted_for_evict", 0))
