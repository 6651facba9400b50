"""The micro-batcher in ModelHost: what shares a forward pass, what waits, and what fails alone."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np
import pytest
from prometheus_client import REGISTRY

from gouache.nst.base import RGBImage, StylizeControls
from gouache.nst.batching import StylizeItem
from gouache.runtime.errors import InvalidArgument
from services.inference.batching import BatchKey, MicroBatcher
from services.inference.domain import (
    ModelHost,
    Params,
    RawImage,
    RawStyle,
    StylizeTask,
    resolve_batch_size,
)
from services.inference.settings import InferenceSettings

POISON = 13
"""A content whose first byte is this fails in the fake family, as an untrained style would."""


class _BatchingFamily:
    """Adds each item's first style weight to its content; records every batch; can hold one."""

    name = "batching"

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Semaphore(0)
        self.lock = threading.Lock()
        self.batches: list[list[tuple[int, int]]] = []

    def stylize(
        self,
        content: RGBImage,
        styles: Sequence[RGBImage],
        weights: Sequence[float],
        controls: StylizeControls,
        *,
        style_keys: Sequence[str] | None = None,
        cancellation: object = None,
    ) -> RGBImage:
        # The warm-up's call; served images go through stylize_batch.
        return self.stylize_batch([StylizeItem(content, styles, weights, controls)])[0]

    def stylize_batch(self, items: Sequence[StylizeItem]) -> list[RGBImage]:
        with self.lock:
            self.batches.append([item.content.shape[:2] for item in items])
        self.started.release()
        assert self.gate.wait(timeout=30)
        if any(item.content.flat[0] == POISON for item in items):
            raise InvalidArgument("styles[0] is not a trained style", field="styles[0]")
        return [(item.content + int(item.weights[0])).astype(np.uint8) for item in items]


def _raw(width: int = 8, height: int = 6, value: int = 0) -> RawImage:
    return RawImage(width, height, bytes([value]) * (width * height * 3))


def _task(*images: RawImage, weight: float = 1.0, version: str = "batch.v1") -> StylizeTask:
    return StylizeTask(
        model_version=version,
        images=images or (_raw(),),
        styles=(RawStyle(key="s1", image=_raw(4, 4, 9)),),
        params=Params(weights=(weight,)),
        tiled=len(images) > 1,
    )


async def _host(family: _BatchingFamily, **options: float) -> ModelHost:
    host = ModelHost(
        ["batch.v1"],
        device="cpu",
        builder=lambda version, device: family,
        **options,  # type: ignore[arg-type]
    )
    await host.load_all()
    family.batches.clear()
    return host


async def _until(condition: Callable[[], bool], *, what: str, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {within}s: {what}")
        await asyncio.sleep(0.005)


async def _hold_the_slot(host: ModelHost, family: _BatchingFamily) -> asyncio.Task[object]:
    """Starts a call that computes until the gate opens, so later calls queue."""
    family.gate.clear()
    first = asyncio.create_task(host.stylize(_task()))
    assert await asyncio.to_thread(family.started.acquire, True, 10)
    return first


async def test_calls_queued_behind_a_busy_slot_share_one_pass() -> None:
    family = _BatchingFamily()
    host = await _host(family, max_batch_size=8)
    first = await _hold_the_slot(host, family)
    calls = [asyncio.create_task(host.stylize(_task(weight=w))) for w in (1.0, 2.0, 3.0)]
    await _until(lambda: host.waiting == 3, what="three images queued")
    family.gate.set()
    results = await asyncio.wait_for(asyncio.gather(*calls), timeout=10)
    await first
    assert family.batches == [[(6, 8)], [(6, 8)] * 3]
    # Each call got its own item back, not a neighbour's.
    assert [int(r.images[0].flat[0]) for r in results] == [1, 2, 3]


async def test_a_batch_holds_at_most_max_batch_size_and_the_rest_follow() -> None:
    family = _BatchingFamily()
    host = await _host(family, max_batch_size=2)
    first = await _hold_the_slot(host, family)
    calls = [asyncio.create_task(host.stylize(_task())) for _ in range(5)]
    await _until(lambda: host.waiting == 5, what="five images queued")
    family.gate.set()
    await asyncio.wait_for(asyncio.gather(first, *calls), timeout=10)
    assert [len(batch) for batch in family.batches] == [1, 2, 2, 1]


async def test_the_tiles_of_one_call_batch_by_size() -> None:
    family = _BatchingFamily()
    host = await _host(family, max_batch_size=8, max_queue_delay_ms=200)
    tiles = (_raw(8, 6), _raw(8, 6, 1), _raw(5, 6), _raw(8, 6, 2))
    result = await asyncio.wait_for(host.stylize(_task(*tiles)), timeout=10)
    assert sorted(family.batches, key=len) == [[(6, 5)], [(6, 8)] * 3]
    assert [int(image.flat[0]) for image in result.images] == [1, 2, 1, 3]


async def test_the_queue_delay_lets_an_idle_server_gather_a_batch() -> None:
    family = _BatchingFamily()
    host = await _host(family, max_batch_size=4, max_queue_delay_ms=300)
    calls = [asyncio.create_task(host.stylize(_task())) for _ in range(3)]
    await asyncio.wait_for(asyncio.gather(*calls), timeout=10)
    assert family.batches == [[(6, 8)] * 3]


async def test_without_a_delay_an_idle_server_runs_each_call_at_once() -> None:
    family = _BatchingFamily()
    host = await _host(family, max_batch_size=8)
    for _ in range(3):
        await asyncio.wait_for(host.stylize(_task()), timeout=10)
    assert family.batches == [[(6, 8)]] * 3


async def test_a_full_batch_does_not_wait_out_the_delay() -> None:
    family = _BatchingFamily()
    host = await _host(family, max_batch_size=2, max_queue_delay_ms=60_000)
    calls = [asyncio.create_task(host.stylize(_task())) for _ in range(2)]
    await asyncio.wait_for(asyncio.gather(*calls), timeout=10)
    assert family.batches == [[(6, 8)] * 2]


async def test_a_bad_item_fails_alone_and_its_batch_mates_succeed() -> None:
    family = _BatchingFamily()
    host = await _host(family, max_batch_size=8)
    first = await _hold_the_slot(host, family)
    good = [asyncio.create_task(host.stylize(_task(_raw(value=v)))) for v in (1, 2)]
    bad = asyncio.create_task(host.stylize(_task(_raw(value=POISON))))
    await _until(lambda: host.waiting == 3, what="three images queued")
    family.gate.set()
    with pytest.raises(InvalidArgument, match="not a trained style"):
        await asyncio.wait_for(bad, timeout=10)
    results = await asyncio.wait_for(asyncio.gather(*good), timeout=10)
    await first
    assert [int(r.images[0].flat[0]) for r in results] == [2, 3]
    # The batch of three failed, then each ran alone.
    assert [len(batch) for batch in family.batches] == [1, 3, 1, 1, 1]


async def test_a_call_canceled_while_queued_is_left_out_of_the_batch() -> None:
    family = _BatchingFamily()
    host = await _host(family, max_batch_size=8)
    first = await _hold_the_slot(host, family)
    kept = asyncio.create_task(host.stylize(_task()))
    dropped = asyncio.create_task(host.stylize(_task()))
    await _until(lambda: host.waiting == 2, what="two images queued")
    dropped.cancel()
    family.gate.set()
    await asyncio.wait_for(asyncio.gather(first, kept), timeout=10)
    assert [len(batch) for batch in family.batches] == [1, 1]
    assert host.waiting == 0


async def test_batch_sizes_and_queue_delays_are_measured_per_version() -> None:
    def count(name: str) -> float:
        return REGISTRY.get_sample_value(name, {"model_version": "batch.v1"}) or 0.0

    family = _BatchingFamily()
    host = await _host(family, max_batch_size=8)
    batches, images = (
        count("gouache_inference_batch_size_count"),
        count("gouache_inference_batch_size_sum"),
    )
    delays = count("gouache_inference_queue_delay_seconds_count")
    first = await _hold_the_slot(host, family)
    calls = [asyncio.create_task(host.stylize(_task())) for _ in range(3)]
    await _until(lambda: host.waiting == 3, what="three images queued")
    family.gate.set()
    await asyncio.wait_for(asyncio.gather(first, *calls), timeout=10)
    assert count("gouache_inference_batch_size_count") - batches == 2
    assert count("gouache_inference_batch_size_sum") - images == 4
    assert count("gouache_inference_queue_delay_seconds_count") - delays == 4


async def test_a_batch_holds_at_most_max_pixels_together() -> None:
    family = _BatchingFamily()
    # 8x6 images of 48 pixels: 100 pixels hold two of them, whatever max_batch_size says.
    host = await _host(family, max_batch_size=8, max_pixels=100)
    first = await _hold_the_slot(host, family)
    calls = [asyncio.create_task(host.stylize(_task())) for _ in range(3)]
    await _until(lambda: host.waiting == 3, what="three images queued")
    family.gate.set()
    await asyncio.wait_for(asyncio.gather(first, *calls), timeout=10)
    assert [len(batch) for batch in family.batches] == [1, 2, 1]


def test_the_batch_limit_counts_images_then_pixels() -> None:
    def limit(max_batch_pixels: int | None, height: int, width: int) -> int:
        batcher = MicroBatcher(
            lambda key, items: [],
            slots=asyncio.Semaphore(1),
            max_batch_size=8,
            max_queue_delay_s=0,
            max_batch_pixels=max_batch_pixels,
        )
        return batcher.batch_limit(BatchKey("v", height, width))

    assert limit(None, 2048, 2048) == 8
    assert limit(2048 * 2048, 512, 512) == 8
    assert limit(2048 * 2048, 1024, 1024) == 4
    assert limit(2048 * 2048, 2048, 2048) == 1
    assert limit(100, 2048, 2048) == 1  # an image the server accepted always runs


def test_batch_settings_are_checked() -> None:
    slots = asyncio.Semaphore(1)
    with pytest.raises(ValueError, match="max_batch_size"):
        MicroBatcher(lambda key, items: [], slots=slots, max_batch_size=0, max_queue_delay_s=0)
    with pytest.raises(ValueError, match="max_queue_delay_s"):
        MicroBatcher(lambda key, items: [], slots=slots, max_batch_size=1, max_queue_delay_s=-1)


def test_batching_is_on_by_default_on_a_gpu_and_off_on_a_cpu() -> None:
    assert InferenceSettings().max_batch_size == 0
    assert resolve_batch_size(0, "cuda") == 8
    assert resolve_batch_size(0, "cpu") == 1
    assert resolve_batch_size(4, "cpu") == 4
    assert resolve_batch_size(1, "cuda") == 1
