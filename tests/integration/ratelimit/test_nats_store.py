"""Two limiters, as two replicas, sharing one NATS KV bucket: together they admit no more
than the plan allows, also when they race on the same key."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gouache.ratelimit.gcra import Rate
from gouache.ratelimit.kv import NatsKvStore, kv_key
from gouache.ratelimit.limiter import RateLimiter, StoreUnavailable
from tests.fixtures.nats import NatsServer, running_nats_server

READY_S = 10.0
OP_TIMEOUT_S = 10.0


@pytest.fixture
async def replicas(nats_server: NatsServer) -> AsyncIterator[list[NatsKvStore]]:
    # A bucket per test, so keys and TTLs of other tests never meet these.
    bucket = f"ratelimit_{uuid.uuid4().hex[:8]}"
    # These tests are about compare-and-set between replicas, not timeouts (tested below): a
    # generous op timeout keeps 60 racing calls on a busy CI machine from reading as an outage.
    stores = [
        NatsKvStore(nats_server.url, name=f"replica{i}", bucket=bucket, op_timeout_s=OP_TIMEOUT_S)
        for i in range(2)
    ]
    await asyncio.gather(*(store.wait_ready(READY_S) for store in stores))
    yield stores
    for store in stores:
        await store.stop()


async def test_two_replicas_admit_one_burst_between_them(replicas: list[NatsKvStore]) -> None:
    rate = Rate(per_minute=60, burst=10)
    limiters = [RateLimiter(store) for store in replicas]
    now = time.time()
    admitted = [(await limiters[i % 2].acquire("user.alice", rate, now)).allowed for i in range(30)]
    assert sum(admitted) == 10
    assert admitted[:10] == [True] * 10
    # Another key has its own budget in the same bucket.
    assert (await limiters[1].acquire("user.bob", rate, now)).allowed


async def test_racing_replicas_never_over_admit(replicas: list[NatsKvStore]) -> None:
    rate = Rate(per_minute=60, burst=15)
    limiters = [RateLimiter(store, max_attempts=50) for store in replicas]
    now = time.time()
    decisions = await asyncio.gather(
        *(limiters[i % 2].acquire("user.carol", rate, now) for i in range(60))
    )
    assert sum(d.allowed for d in decisions) == 15
    refused = [d for d in decisions if not d.allowed]
    assert min(d.retry_after_s for d in refused) == pytest.approx(1.0, abs=1e-3)
    tat, revision = await replicas[0].read("user.carol")
    assert tat == pytest.approx(now + 15.0)
    assert revision > 0


async def test_the_rate_refills_across_replicas(replicas: list[NatsKvStore]) -> None:
    rate = Rate(per_minute=600, burst=2)  # one every 0.1 s
    limiters = [RateLimiter(store) for store in replicas]
    start = time.time()
    assert (await limiters[0].acquire("user.dave", rate, start)).allowed
    assert (await limiters[1].acquire("user.dave", rate, start)).allowed
    refused = await limiters[0].acquire("user.dave", rate, start)
    assert not refused.allowed
    later = await limiters[1].acquire("user.dave", rate, start + refused.retry_after_s)
    assert later.allowed


async def test_keys_are_made_safe_for_nats(replicas: list[NatsKvStore]) -> None:
    key = kv_key("key", "a.b:c/d=e f")
    assert key == "key.a=2eb=3ac=2fd=3de=20f"
    assert await replicas[0].write(key, 1.5, 0)
    assert (await replicas[1].read(key))[0] == 1.5


async def test_a_store_without_nats_is_unavailable_not_stuck() -> None:
    store = NatsKvStore("nats://127.0.0.1:1", name="nowhere")
    await store.start()
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="not connected"):
        await store.read("user.alice")
    assert time.monotonic() - started < 1.0
    await store.stop()


async def test_losing_nats_makes_calls_unavailable_within_the_timeout(tmp_path: Path) -> None:
    with running_nats_server(tmp_path) as server:
        store = NatsKvStore(server.url, name="lonely", op_timeout_s=0.3)
        await store.wait_ready(READY_S)
        limiter = RateLimiter(store)
        rate = Rate(per_minute=60, burst=5)
        assert (await limiter.acquire("user.erin", rate, time.time())).allowed
        server.stop()
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await limiter.acquire("user.erin", rate, time.time())
        assert time.monotonic() - started < 1.5
        await store.stop()
