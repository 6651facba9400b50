"""PriorityGate: N slots, granted to the highest class waiting, with aging against starvation."""

from __future__ import annotations

import asyncio

import pytest

from services.tiling.priority import PriorityGate


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def _hold(gate: PriorityGate, rank: int, order: list[int], release: asyncio.Event) -> None:
    async with gate.slot(rank):
        order.append(rank)
        await release.wait()


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_free_slots_are_taken_at_once_and_the_rest_wait() -> None:
    gate = PriorityGate(2, aging_s=60)
    release = asyncio.Event()
    order: list[int] = []
    tasks = [asyncio.create_task(_hold(gate, rank, order, release)) for rank in (5, 5, 5)]
    await _settle()
    assert order == [5, 5]
    assert gate.waiting == 1
    release.set()
    await asyncio.gather(*tasks)
    assert order == [5, 5, 5]
    assert gate.waiting == 0
    assert gate.busy == 0


async def test_a_freed_slot_goes_to_the_highest_class_waiting_not_the_first() -> None:
    gate = PriorityGate(1, aging_s=3600)
    first = asyncio.Event()
    order: list[int] = []
    running = asyncio.create_task(_hold(gate, 3, order, first))
    await _settle()
    others = asyncio.Event()
    others.set()
    # A flood of low-priority work arrives first, then one high-priority job.
    waiting = [asyncio.create_task(_hold(gate, 5, order, others)) for _ in range(4)]
    await _settle()
    waiting.append(asyncio.create_task(_hold(gate, 0, order, others)))
    await _settle()
    first.set()
    await asyncio.gather(running, *waiting)
    assert order == [3, 0, 5, 5, 5, 5]


async def test_waiting_ages_a_low_class_past_newer_high_ones() -> None:
    clock = Clock()
    gate = PriorityGate(1, aging_s=10, clock=clock)
    hold = asyncio.Event()
    order: list[int] = []
    running = asyncio.create_task(_hold(gate, 0, order, hold))
    await _settle()
    go = asyncio.Event()
    go.set()
    old_low = asyncio.create_task(_hold(gate, 5, order, go))
    await _settle()
    clock.now = 60.0  # the rank-5 job has waited 60 s: worth 6 ranks
    new_high = asyncio.create_task(_hold(gate, 1, order, go))
    await _settle()
    hold.set()
    await asyncio.gather(running, old_low, new_high)
    assert order == [0, 5, 1]


async def test_a_cancelled_waiter_leaves_the_queue_and_a_cancelled_holder_frees_its_slot() -> None:
    gate = PriorityGate(1, aging_s=60)
    hold = asyncio.Event()
    order: list[int] = []
    holder = asyncio.create_task(_hold(gate, 2, order, hold))
    await _settle()
    waiter = asyncio.create_task(_hold(gate, 0, order, hold))
    await _settle()
    assert gate.waiting == 1
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert gate.waiting == 0
    holder.cancel()
    with pytest.raises(asyncio.CancelledError):
        await holder
    assert gate.busy == 0
    go = asyncio.Event()
    go.set()
    await asyncio.wait_for(_hold(gate, 4, order, go), timeout=1)
    assert order == [2, 4]


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="slots"):
        PriorityGate(0, aging_s=1)
    with pytest.raises(ValueError, match="aging_s"):
        PriorityGate(1, aging_s=0)
