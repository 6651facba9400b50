"""An in-memory LimitStore with compare-and-set, for tests of what sits above the store."""

from __future__ import annotations

import asyncio

from gouache.ratelimit.limiter import StoreUnavailable


class MemoryStore:
    """Keys to (state, revision); `interleave` yields between read and write, so that
    concurrent acquires race as replicas do; `down` makes every call fail."""

    def __init__(self, *, interleave: bool = False) -> None:
        self.values: dict[str, tuple[float, int]] = {}
        self.interleave = interleave
        self.down = False
        self.conflicts = 0

    async def read(self, key: str) -> tuple[float | None, int]:
        if self.down:
            raise StoreUnavailable("store is down")
        if self.interleave:
            await asyncio.sleep(0)
        value, revision = self.values.get(key, (None, 0))
        return value, revision

    async def write(self, key: str, tat: float, revision: int) -> int | None:
        if self.down:
            raise StoreUnavailable("store is down")
        if self.interleave:
            await asyncio.sleep(0)
        current = self.values.get(key, (None, 0))[1]
        if current != revision:
            self.conflicts += 1
            return None
        self.values[key] = (tat, revision + 1)
        return revision + 1
