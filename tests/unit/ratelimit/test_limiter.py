"""RateLimiter over a compare-and-set store: races between replicas never over-admit."""

from __future__ import annotations

import asyncio

import pytest

from gouache.ratelimit.gcra import Rate
from gouache.ratelimit.limiter import RateLimiter, StoreUnavailable
from tests.unit.ratelimit.memory_store import MemoryStore

RATE = Rate(per_minute=60, burst=5)


async def test_the_store_keeps_the_state_between_calls() -> None:
    store = MemoryStore()
    limiter = RateLimiter(store)
    decisions = [await limiter.acquire("user.a", RATE, 50.0) for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert store.values["user.a"] == (55.0, 5)
    assert (await limiter.acquire("user.a", RATE, 51.0)).allowed


async def test_two_limiters_on_one_store_share_the_budget() -> None:
    store = MemoryStore()
    replicas = [RateLimiter(store), RateLimiter(store)]
    admitted = [(await replicas[i % 2].acquire("user.a", RATE, 0.0)).allowed for i in range(10)]
    assert sum(admitted) == RATE.burst


async def test_concurrent_acquires_retry_their_writes_and_never_over_admit() -> None:
    store = MemoryStore(interleave=True)
    replicas = [RateLimiter(store, max_attempts=20) for _ in range(4)]
    decisions = await asyncio.gather(
        *(replicas[i % 4].acquire("user.a", RATE, 0.0) for i in range(30))
    )
    assert sum(d.allowed for d in decisions) == RATE.burst
    assert store.conflicts > 0
    # Five admitted, one interval each; each replica's concurrent calls share writes.
    assert store.values["user.a"][0] == 5.0


async def test_a_key_too_busy_to_win_a_write_is_refused_for_one_interval() -> None:
    store = MemoryStore(interleave=True)
    replicas = [RateLimiter(store, max_attempts=1) for _ in range(3)]
    decisions = await asyncio.gather(*(r.acquire("user.a", RATE, 0.0) for r in replicas))
    assert [d.allowed for d in decisions] == [True, False, False]
    assert decisions[1].retry_after_s == RATE.interval_s


class CountingStore(MemoryStore):
    """Counts reads and writes."""

    def __init__(self) -> None:
        super().__init__(interleave=True)
        self.reads = 0
        self.writes = 0

    async def read(self, key: str) -> tuple[float | None, int]:
        self.reads += 1
        return await super().read(key)

    async def write(self, key: str, tat: float, revision: int) -> int | None:
        self.writes += 1
        return await super().write(key, tat, revision)


async def test_concurrent_calls_on_one_replica_share_reads_and_writes_and_never_race() -> None:
    store = CountingStore()
    limiter = RateLimiter(store, max_attempts=1)
    rate = Rate(per_minute=600, burst=20)
    charges = [("user.a", rate), ("key.k", rate)]

    decisions = await asyncio.gather(*(limiter.acquire_all(charges, 0.0) for _ in range(16)))

    assert all(user.allowed and key.allowed for user, key in decisions)
    assert store.conflicts == 0
    # All sixteen arrived before the first commit began: one read and one write per key.
    assert (store.reads, store.writes) == (2, 2)
    assert store.values["user.a"][0] == store.values["key.k"][0] == pytest.approx(1.6)
    assert [d.remaining for d, _ in decisions] == list(range(19, 3, -1))


async def test_in_a_group_a_call_one_key_refuses_charges_no_key() -> None:
    store = MemoryStore(interleave=True)
    limiter = RateLimiter(store)
    user, key = Rate(per_minute=60, burst=10), Rate(per_minute=60, burst=3)

    decisions = await asyncio.gather(
        *(limiter.acquire_all([("user.a", user), ("key.k", key)], 0.0) for _ in range(6))
    )

    assert [u.allowed and k.allowed for u, k in decisions] == [True] * 3 + [False] * 3
    assert store.values["user.a"][0] == store.values["key.k"][0] == 3.0


async def test_calls_arriving_during_a_commit_form_the_next_group() -> None:
    store = CountingStore()
    limiter = RateLimiter(store)
    first = asyncio.ensure_future(limiter.acquire("user.a", RATE, 0.0))
    await asyncio.sleep(0)
    later = [asyncio.ensure_future(limiter.acquire("user.a", RATE, 0.0)) for _ in range(3)]

    decisions = await asyncio.gather(first, *later)

    assert all(d.allowed for d in decisions)
    # The second group starts from the state the first wrote: no read.
    assert (store.reads, store.writes) == (1, 2)
    assert store.values["user.a"][0] == 4.0


async def test_a_remembered_state_another_replica_moved_on_is_read_again() -> None:
    store = CountingStore()
    here, there = RateLimiter(store), RateLimiter(store)
    assert (await here.acquire("user.a", RATE, 0.0)).allowed
    for _ in range(4):
        assert (await there.acquire("user.a", RATE, 0.0)).allowed
    reads = store.reads

    refused = await here.acquire("user.a", RATE, 0.0)

    assert not refused.allowed
    assert refused.retry_after_s == pytest.approx(RATE.interval_s)
    # The remembered state admitted it and the write lost; the state read then refuses it.
    assert store.conflicts == 1
    assert store.reads == reads + 1
    assert store.values["user.a"] == (5.0, 5)


async def test_a_store_failure_reaches_every_call_of_the_group() -> None:
    store = MemoryStore(interleave=True)
    limiter = RateLimiter(store)
    first = asyncio.ensure_future(limiter.acquire("user.a", RATE, 0.0))
    await asyncio.sleep(0)
    store.down = True
    rest = [asyncio.ensure_future(limiter.acquire("user.a", RATE, 0.0)) for _ in range(3)]
    outcomes = await asyncio.gather(first, *rest, return_exceptions=True)
    assert all(isinstance(outcome, StoreUnavailable) for outcome in outcomes)
    store.down = False
    assert (await limiter.acquire("user.a", RATE, 0.0)).allowed


async def test_store_failures_reach_the_caller() -> None:
    store = MemoryStore()
    store.down = True
    with pytest.raises(StoreUnavailable):
        await RateLimiter(store).acquire("user.a", RATE, 0.0)
