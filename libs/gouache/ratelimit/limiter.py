"""Rate-limited keys over a compare-and-set store, shared by every replica."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from gouache.ratelimit.gcra import Decision, Rate, decide

# Keys whose last written state a replica remembers, most recently used kept.
KNOWN_STATES = 4096


class StoreUnavailable(Exception):
    """The store could not be read or written (unreachable, timed out, refused)."""


class LimitStore(Protocol):
    """Where keys' states (GCRA arrival times) live, with compare-and-set writes."""

    async def read(self, key: str) -> tuple[float | None, int]:
        """The key's state and its revision; (None, 0) for a key never written or expired."""

    async def write(self, key: str, tat: float, revision: int) -> int | None:
        """Stores tat if the key is still at revision (0: absent) and returns the key's new
        revision; None if it moved on."""


class RateLimiter:
    """Admits requests per key with GCRA, the state held in a shared LimitStore.

    A request charged to several keys (a user and an API key) is decided on all of them
    first and written only when every one admits it, so a refusal by one key costs the
    others nothing. Replicas race on the same key: each reads the state, decides, and
    writes only if nobody wrote in between, else reads that key again. A key that loses
    `max_attempts` races in a row refuses the request for one interval: it is that busy.

    Within one replica, requests charged to the same keys while a read-decide-write for
    them is under way wait for it and then go together (group commit): one read and one
    write per key decide the whole group, in arrival order, exactly as one after the
    other would. Without that, sixteen concurrent calls of one user raced each other on
    the store: each lost race cost two more round trips, and calls that lost
    `max_attempts` of them were refused although the user was far under the limit.

    A replica remembers the state and revision it last wrote for a key and decides the
    next group on that without reading: when no other replica wrote since, the write
    succeeds and one round trip was enough; when one did, the write is refused and the
    key is read and decided again, as after any lost race. (States only grow, so a
    remembered one never refuses what the current one would admit.)
    """

    def __init__(self, store: LimitStore, *, max_attempts: int = 10) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._store = store
        self._max_attempts = max_attempts
        # Requests waiting for the group commit of their keys, by keys.
        self._pending: dict[tuple[str, ...], list[_Request]] = {}
        # The running commits (the loop keeps only weak references to tasks).
        self._committing: set[asyncio.Task[None]] = set()
        # key -> (state, revision) as this replica last wrote it.
        self._known: OrderedDict[str, tuple[float, int]] = OrderedDict()

    async def acquire(self, key: str, rate: Rate, now: float) -> Decision:
        """Takes one request for key at `now` (seconds, the same clock on every replica)."""
        (decision,) = await self.acquire_all([(key, rate)], now)
        return decision

    async def acquire_all(self, charges: Sequence[tuple[str, Rate]], now: float) -> list[Decision]:
        """Takes one request from every key, or from none when any refuses; the decisions
        come back in the order of charges."""
        keys = tuple(key for key, _ in charges)
        if len(set(keys)) != len(keys):
            raise ValueError(f"a request is charged to each key once: {keys}")
        request = _Request(
            rates=tuple(rate for _, rate in charges),
            now=now,
            decided=asyncio.get_running_loop().create_future(),
        )
        waiting = self._pending.get(keys)
        if waiting is not None:
            waiting.append(request)
        else:
            self._pending[keys] = [request]
            # The first request of a group commits it, and the groups after it, for all.
            task = asyncio.get_running_loop().create_task(self._commit_groups(keys))
            self._committing.add(task)
            task.add_done_callback(self._committing.discard)
        # shield: a caller that gives up leaves its group's commit (and its charge) intact.
        return await asyncio.shield(request.decided)

    async def _commit_groups(self, keys: tuple[str, ...]) -> None:
        # Requests that arrive during a commit form the next group.
        while True:
            group = self._pending[keys]
            self._pending[keys] = []
            try:
                await self._commit_group(keys, group)
            except Exception as exc:
                for request in group:
                    _settle(request.decided, exc)
            if not self._pending[keys]:
                del self._pending[keys]
                return

    async def _commit_group(self, keys: tuple[str, ...], group: Sequence[_Request]) -> None:
        states = await asyncio.gather(*(self._state(key) for key in keys))
        tats: list[float | None] = [tat for tat, _ in states]
        decided: list[list[Decision]] = []
        for request in group:
            decisions = [
                decide(tat, request.now, rate)
                for tat, rate in zip(tats, request.rates, strict=True)
            ]
            if all(decision.allowed for decision in decisions):
                tats = [decision.tat for decision in decisions]
            decided.append(decisions)
        admitted = [i for i, decisions in enumerate(decided) if all(d.allowed for d in decisions)]
        if admitted:
            await asyncio.gather(
                *(
                    self._write(key, index, revision, group, admitted, decided)
                    for index, (key, (_, revision)) in enumerate(zip(keys, states, strict=True))
                )
            )
        for request, decisions in zip(group, decided, strict=True):
            _settle(request.decided, decisions)

    async def _write(
        self,
        key: str,
        index: int,
        revision: int,
        group: Sequence[_Request],
        admitted: Sequence[int],
        decided: list[list[Decision]],
    ) -> None:
        """Writes key's state after the admitted requests; when another replica wrote since
        the read, decides them again on what it wrote (on this key only: a request that
        this key refuses only now stays charged to the others, a race inside a race)."""
        tat = decided[admitted[-1]][index].tat
        for attempt in range(self._max_attempts):
            if attempt:
                self._known.pop(key, None)
                current, revision = await self._store.read(key)
                for i in admitted:
                    request = group[i]
                    decision = decide(current, request.now, request.rates[index])
                    decided[i][index] = decision
                    if decision.allowed:
                        current = decision.tat
                if current is None:
                    return
                tat = current
                if not any(decided[i][index].allowed for i in admitted):
                    return
            written = await self._store.write(key, tat, revision)
            if written is not None:
                self._remember(key, tat, written)
                return
        for i in admitted:
            now = group[i].now
            decided[i][index] = Decision(
                allowed=False, tat=now, retry_after_s=group[i].rates[index].interval_s, remaining=0
            )

    async def _state(self, key: str) -> tuple[float | None, int]:
        known = self._known.get(key)
        if known is not None:
            self._known.move_to_end(key)
            return known
        return await self._store.read(key)

    def _remember(self, key: str, tat: float, revision: int) -> None:
        self._known[key] = (tat, revision)
        self._known.move_to_end(key)
        if len(self._known) > KNOWN_STATES:
            self._known.popitem(last=False)


@dataclass
class _Request:
    """One acquire_all waiting for its group: its rates in the order of its keys."""

    rates: tuple[Rate, ...]
    now: float
    decided: asyncio.Future[list[Decision]]


def _settle(future: asyncio.Future[list[Decision]], outcome: list[Decision] | Exception) -> None:
    if future.done():
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
