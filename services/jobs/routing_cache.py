"""The routing table as ListModels reads it: loaded at most once per interval, shared by callers.

Reading the table is three queries, a database round trip per ListModels; measured with
ghz (loadtests/RESULTS.md), sixteen concurrent callers on SQLite, whose sessions then all
began IMMEDIATE, queued on one another and on the job writes, with a p99 of seconds. The
table changes only when an admin registers a version or sets a route or an endpoint: this
replica drops its copy when it makes such a change, and a change made by another replica
is seen within `ttl_s`.
Decisions that validate a change (register, route, endpoint) still read inside their own
transaction, never from here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from services.jobs.domain.routing import RoutingTable


class RoutingCache:
    """One loaded table, reused until it is `ttl_s` old or invalidated.

    Callers that find it stale while a load is under way wait for that load instead of
    starting their own; a load that began before an invalidation is never kept, nor
    returned to a caller that came after it. `ttl_s` 0 reads the store on every call.
    """

    def __init__(
        self,
        load: Callable[[], Awaitable[RoutingTable]],
        *,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_s < 0:
            raise ValueError("ttl_s must be >= 0")
        self._load = load
        self._ttl_s = ttl_s
        self._clock = clock
        self._table: RoutingTable | None = None
        self._expires_at = 0.0
        self._generation = 0
        self._loading: asyncio.Future[RoutingTable] | None = None
        self._loading_generation = -1

    async def get(self) -> RoutingTable:
        """The table, from memory while fresh, else from one shared load."""
        if self._ttl_s == 0:
            return await self._load()
        if self._table is not None and self._clock() < self._expires_at:
            return self._table
        if self._loading is None or self._loading_generation != self._generation:
            self._loading_generation = self._generation
            self._loading = asyncio.ensure_future(self._load_into_cache(self._generation))
            # Retrieved here too, so a failed load whose callers all gave up logs nothing.
            self._loading.add_done_callback(_retrieve)
        # A caller that gives up (cancellation, deadline) leaves the load to the others.
        return await asyncio.shield(self._loading)

    def invalidate(self) -> None:
        """Forgets the table: the next get() reads the store (this replica changed it)."""
        self._generation += 1
        self._table = None

    async def _load_into_cache(self, generation: int) -> RoutingTable:
        started = self._clock()
        try:
            table = await self._load()
        finally:
            if self._loading_generation == generation:
                self._loading = None
        if generation == self._generation:
            self._table, self._expires_at = table, started + self._ttl_s
        return table


def _retrieve(future: asyncio.Future[RoutingTable]) -> None:
    if not future.cancelled():
        future.exception()
