"""A concurrency limit that serves the highest priority class waiting, with aging.

tiling consumes each priority class (gouache.priority.CLASSES) with its own durable
consumer, so the jobs of every class reach the worker side by side whatever the backlog
of the others; this gate then decides which of the jobs waiting runs when a slot frees:
the one with the lowest effective rank, `rank - waited / aging_s` (one rank gained per
aging_s of waiting, so a low class is delayed but never starved), ties in arrival order.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass
class _Waiter:
    rank: int
    since: float
    order: int
    granted: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class PriorityGate:
    """At most `slots` holders at once; a freed slot goes to the best-ranked waiter."""

    def __init__(
        self, slots: int, *, aging_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if slots < 1:
            raise ValueError(f"slots must be at least 1, got {slots}")
        if aging_s <= 0:
            raise ValueError(f"aging_s must be positive, got {aging_s}")
        self._slots = slots
        self._aging_s = aging_s
        self._clock = clock
        self._busy = 0
        self._waiters: list[_Waiter] = []
        self._arrivals = itertools.count()

    @property
    def busy(self) -> int:
        """Slots held now."""
        return self._busy

    @property
    def waiting(self) -> int:
        """Holders waiting for a slot."""
        return len(self._waiters)

    @asynccontextmanager
    async def slot(self, rank: int) -> AsyncIterator[None]:
        """Holds a slot for the block; waits, in priority order, while none is free."""
        await self._acquire(rank)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, rank: int) -> None:
        if self._busy < self._slots and not self._waiters:
            self._busy += 1
            return
        waiter = _Waiter(rank=rank, since=self._clock(), order=next(self._arrivals))
        self._waiters.append(waiter)
        try:
            await waiter.granted
        except asyncio.CancelledError:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            elif waiter.granted.done() and not waiter.granted.cancelled():
                self._release()  # granted as it was cancelled: pass the slot on
            raise

    def _release(self) -> None:
        self._busy -= 1
        self._grant()

    def _grant(self) -> None:
        while self._busy < self._slots and self._waiters:
            # A waiter cancelled since it queued leaves when its task resumes; skip it.
            live = [waiter for waiter in self._waiters if not waiter.granted.done()]
            if not live:
                return
            now = self._clock()
            best = min(
                live,
                key=lambda w: (w.rank - (now - w.since) / self._aging_s, w.order),
            )
            self._waiters.remove(best)
            self._busy += 1
            best.granted.set_result(None)
