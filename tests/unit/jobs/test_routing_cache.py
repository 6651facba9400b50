"""RoutingCache: one shared load per interval, dropped on this replica's own changes."""

from __future__ import annotations

import asyncio

import pytest

from gouache.contracts.jobs.v1 import jobs_pb2
from services.jobs.domain.routing import ModelRoute, RouteTarget, RoutingTable
from services.jobs.routing_cache import RoutingCache
from tests.unit.jobs.conftest import Harness


class Loads:
    """A store stand-in: each load returns a new table naming its number; can be held."""

    def __init__(self) -> None:
        self.count = 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self) -> RoutingTable:
        self.count += 1
        number = self.count
        await self.gate.wait()
        return RoutingTable(
            versions={},
            routes={f"load{number}": ModelRoute(f"load{number}", (RouteTarget("v", 1),))},
        )


def _name(table: RoutingTable) -> str:
    (alias,) = table.routes
    return alias


async def test_a_fresh_table_is_reused_until_it_is_ttl_old() -> None:
    loads, now = Loads(), [100.0]
    cache = RoutingCache(loads, ttl_s=1.0, clock=lambda: now[0])

    assert _name(await cache.get()) == "load1"
    now[0] += 0.9
    assert _name(await cache.get()) == "load1"
    now[0] += 0.2
    assert _name(await cache.get()) == "load2"
    assert loads.count == 2


async def test_concurrent_callers_share_one_load() -> None:
    loads = Loads()
    loads.gate.clear()
    cache = RoutingCache(loads, ttl_s=1.0)

    waiting = [asyncio.ensure_future(cache.get()) for _ in range(16)]
    await asyncio.sleep(0)
    loads.gate.set()
    tables = await asyncio.gather(*waiting)

    assert loads.count == 1
    assert {_name(t) for t in tables} == {"load1"}


async def test_invalidate_drops_the_table_and_a_load_begun_before_it() -> None:
    loads = Loads()
    cache = RoutingCache(loads, ttl_s=60.0)
    assert _name(await cache.get()) == "load1"

    loads.gate.clear()
    cache.invalidate()
    before = asyncio.ensure_future(cache.get())
    await asyncio.sleep(0)
    cache.invalidate()
    after = asyncio.ensure_future(cache.get())
    await asyncio.sleep(0)
    loads.gate.set()

    assert _name(await before) == "load2"
    # The caller after the second change never sees what was read before it.
    assert _name(await after) == "load3"
    assert _name(await cache.get()) == "load3"
    assert loads.count == 3


async def test_a_failed_load_reaches_its_callers_and_the_next_call_loads_again() -> None:
    calls = 0

    async def flaky() -> RoutingTable:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("database restarting")
        return RoutingTable(versions={}, routes={})

    cache = RoutingCache(flaky, ttl_s=1.0)
    with pytest.raises(ConnectionError):
        await cache.get()
    assert (await cache.get()).routes == {}
    assert calls == 2


async def test_a_caller_that_gives_up_leaves_the_load_to_the_others() -> None:
    loads = Loads()
    loads.gate.clear()
    cache = RoutingCache(loads, ttl_s=1.0)
    impatient = asyncio.ensure_future(cache.get())
    patient = asyncio.ensure_future(cache.get())
    await asyncio.sleep(0)
    impatient.cancel()
    loads.gate.set()

    assert _name(await patient) == "load1"
    assert loads.count == 1


async def test_ttl_zero_reads_the_store_every_call() -> None:
    loads = Loads()
    cache = RoutingCache(loads, ttl_s=0)
    for expected in ("load1", "load2", "load3"):
        assert _name(await cache.get()) == expected


def test_a_negative_ttl_is_refused() -> None:
    with pytest.raises(ValueError, match="ttl_s"):
        RoutingCache(Loads(), ttl_s=-1)


async def test_list_models_shows_a_route_set_through_this_replica_at_once(jobs: Harness) -> None:
    async def gatys_targets() -> dict[str, int]:
        listed = await jobs.stub.ListModels(
            jobs_pb2.ListModelsRequest(), metadata=jobs.operator(), timeout=10
        )
        (route,) = [r for r in listed.routes if r.alias == "gatys"]
        return {t.model_version: t.weight for t in route.targets}

    before = await gatys_targets()
    assert before == await gatys_targets() == {"gatys.lite0-v1": 100}
    await jobs.stub.SetModelRoute(
        jobs_pb2.SetModelRouteRequest(
            alias="gatys",
            targets=[
                jobs_pb2.RouteTarget(model_version="gatys.lite0-v1", weight=30),
                jobs_pb2.RouteTarget(model_version="gatys.lite0-fast", weight=70),
            ],
        ),
        metadata=jobs.operator(),
        timeout=10,
    )

    assert await gatys_targets() == {"gatys.lite0-v1": 30, "gatys.lite0-fast": 70}
