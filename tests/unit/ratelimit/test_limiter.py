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
    assert store.values["user.a"] == (5.0, 5)


async def test_a_key_too_busy_to_win_a_write_is_refused_for_one_interval() -> None:
    store = MemoryStore(interleave=True)
    limiter = RateLimiter(store, max_attempts=1)
    decisions = await asyncio.gather(*(limiter.acquire("user.a", RATE, 0.0) for _ in range(3)))
    assert [d.allowed for d in decisions] == [True, False, False]
    assert decisions[1].retry_after_s == RATE.interval_s


async def test_store_failures_reach_the_caller() -> None:
    store = MemoryStore()
    store.down = True
    with pytest.raises(StoreUnavailable):
        await RateLimiter(store).acquire("user.a", RATE, 0.0)
