"""Rate-limited keys over a compare-and-set store, shared by every replica."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

from gouache.ratelimit.gcra import Decision, Rate, decide


class StoreUnavailable(Exception):
    """The store could not be read or written (unreachable, timed out, refused)."""


class LimitStore(Protocol):
    """Where keys' states (GCRA arrival times) live, with compare-and-set writes."""

    async def read(self, key: str) -> tuple[float | None, int]:
        """The key's state and its revision; (None, 0) for a key never written or expired."""

    async def write(self, key: str, tat: float, revision: int) -> bool:
        """Stores tat if the key is still at revision (0: absent); False if it moved on."""


class RateLimiter:
    """Admits requests per key with GCRA, the state held in a shared LimitStore.

    A request charged to several keys (a user and an API key) is decided on all of them
    first and written only when every one admits it, so a refusal by one key costs the
    others nothing. Replicas race on the same key: each reads the state, decides, and
    writes only if nobody wrote in between, else reads that key again. A key that loses
    `max_attempts` races in a row refuses the request for one interval: it is that busy.
    """

    def __init__(self, store: LimitStore, *, max_attempts: int = 10) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._store = store
        self._max_attempts = max_attempts

    async def acquire(self, key: str, rate: Rate, now: float) -> Decision:
        """Takes one request for key at `now` (seconds, the same clock on every replica)."""
        (decision,) = await self.acquire_all([(key, rate)], now)
        return decision

    async def acquire_all(self, charges: Sequence[tuple[str, Rate]], now: float) -> list[Decision]:
        """Takes one request from every key, or from none when any refuses; the decisions
        come back in the order of charges."""
        states = await asyncio.gather(*(self._store.read(key) for key, _ in charges))
        decisions = [
            decide(tat, now, rate) for (tat, _), (_, rate) in zip(states, charges, strict=True)
        ]
        if not all(decision.allowed for decision in decisions):
            return decisions
        return list(
            await asyncio.gather(
                *(
                    self._commit(key, rate, now, decision, revision)
                    for (key, rate), decision, (_, revision) in zip(
                        charges, decisions, states, strict=True
                    )
                )
            )
        )

    async def _commit(
        self, key: str, rate: Rate, now: float, decision: Decision, revision: int
    ) -> Decision:
        # Another replica may have written since the read: decide again on what it wrote.
        # A key that refuses only here leaves the request charged to the others (a race
        # inside a race, and at most one request).
        for attempt in range(self._max_attempts):
            if attempt:
                tat, revision = await self._store.read(key)
                decision = decide(tat, now, rate)
                if not decision.allowed:
                    return decision
            if await self._store.write(key, decision.tat, revision):
                return decision
        return Decision(allowed=False, tat=now, retry_after_s=rate.interval_s, remaining=0)
