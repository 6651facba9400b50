"""ModelHost rules with a stand-in family: slots, cancellation, style keys, loading, devices."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np
import pytest

from gouache.nst.base import Cancellation, RGBImage, StylizeControls
from gouache.runtime.errors import FailedPrecondition, Unavailable
from services.inference.domain import (
    ModelHost,
    Params,
    RawImage,
    RawStyle,
    StylizeTask,
    resolve_device,
    warmup_images,
)


class _RecordingFamily:
    """Returns the content; counts how many stylizations overlap; can hold them."""

    name = "recording"

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.lock = threading.Lock()
        self.active = 0
        self.most_active = 0
        self.calls: list[dict[str, object]] = []
        self.started = threading.Semaphore(0)

    def stylize(
        self,
        content: RGBImage,
        styles: Sequence[RGBImage],
        weights: Sequence[float],
        controls: StylizeControls,
        *,
        style_keys: Sequence[str] | None = None,
        cancellation: Cancellation | None = None,
    ) -> RGBImage:
        with self.lock:
            self.active += 1
            self.most_active = max(self.most_active, self.active)
            self.calls.append({"weights": tuple(weights), "controls": controls, "keys": style_keys})
        self.started.release()
        try:
            assert self.gate.wait(timeout=30)
            return content.copy()
        finally:
            with self.lock:
                self.active -= 1


def _raw(width: int = 8, height: int = 6, value: int = 0) -> RawImage:
    return RawImage(width, height, bytes([value]) * (width * height * 3))


def _task(**changes: object) -> StylizeTask:
    fields: dict[str, object] = {
        "model_version": "rec.v1",
        "images": (_raw(),),
        "styles": (RawStyle(key="s1", image=_raw(4, 4, 9)),),
        "params": Params(),
    }
    fields.update(changes)
    return StylizeTask(**fields)  # type: ignore[arg-type]


async def _until(condition: Callable[[], bool], *, what: str, within: float = 10.0) -> None:
    """Yield to the event loop until condition holds; fail after within seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {within}s: {what}")
        await asyncio.sleep(0.005)


async def _host(family: _RecordingFamily, **options: int) -> ModelHost:
    host = ModelHost(["rec.v1"], device="cpu", builder=lambda version, device: family, **options)
    await host.load_all()
    family.calls.clear()
    return host


async def test_defaults_reach_the_family() -> None:
    family = _RecordingFamily()
    host = await _host(family)
    result = await host.stylize(_task())
    assert result.images[0].shape == (6, 8, 3)
    call = family.calls[0]
    assert call["controls"] == StylizeControls(alpha=1.0, seed=0)
    assert call["weights"] == (1.0,)
    assert call["keys"] == ["s1"]


async def test_a_style_without_a_key_is_keyed_by_its_pixels() -> None:
    family = _RecordingFamily()
    host = await _host(family)
    style = _raw(4, 4, 9)
    await host.stylize(_task(styles=(RawStyle(key="", image=style),)))
    assert family.calls[0]["keys"] == [hashlib.sha256(style.pixels).hexdigest()]


async def test_a_canceled_call_keeps_its_slot_until_its_thread_is_done() -> None:
    family = _RecordingFamily()
    host = await _host(family, max_concurrency=1)
    family.gate.clear()
    first = asyncio.create_task(host.stylize(_task()))
    assert await asyncio.to_thread(family.started.acquire, True, 10)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert host.waiting == 0
    second = asyncio.create_task(host.stylize(_task()))
    await _until(lambda: host.waiting == 1, what="the second call queued for the slot")
    assert len(family.calls) == 1  # the second waits for the abandoned one
    family.gate.set()
    await asyncio.wait_for(second, timeout=10)
    assert family.most_active == 1
    assert len(family.calls) == 2
    assert host.waiting == 0


async def test_two_slots_run_side_by_side() -> None:
    family = _RecordingFamily()
    host = await _host(family, max_concurrency=2)
    family.gate.clear()
    tasks = [asyncio.create_task(host.stylize(_task())) for _ in range(2)]
    for _ in range(2):
        assert await asyncio.to_thread(family.started.acquire, True, 10)
    family.gate.set()
    await asyncio.gather(*tasks)
    assert family.most_active == 2


async def test_unknown_and_warming_versions() -> None:
    family = _RecordingFamily()
    host = ModelHost(["rec.v1"], device="cpu", builder=lambda version, device: family)
    family.gate.clear()
    loading = asyncio.create_task(host.load_all())
    assert await asyncio.to_thread(family.started.acquire, True, 10)
    with pytest.raises(Unavailable, match="still warming up"):
        await host.stylize(_task())
    with pytest.raises(FailedPrecondition, match=r"loaded: rec\.v1"):
        await host.stylize(_task(model_version="rec.v2"))
    family.gate.set()
    await loading
    assert [(m.version, m.ready) for m in host.models()] == [("rec.v1", True)]


async def test_a_configured_version_not_built_yet_is_unavailable_not_unknown() -> None:
    # After a restart the server takes calls while load_all builds the versions in turn:
    # the second one is not in the host yet, which is a retry, not a permanent refusal.
    family = _RecordingFamily()
    host = ModelHost(["rec.v1", "rec.v2"], device="cpu", builder=lambda version, device: family)
    with pytest.raises(Unavailable, match=r"rec\.v2 is still loading; retry shortly"):
        await host.stylize(_task(model_version="rec.v2"))
    with pytest.raises(FailedPrecondition, match=r"rec\.v3 is not loaded here"):
        await host.stylize(_task(model_version="rec.v3"))
    await host.load_all()
    await host.stylize(_task(model_version="rec.v2"))


async def test_a_version_that_cannot_be_built_fails_the_start() -> None:
    def broken(version: str, device: str) -> _RecordingFamily:
        raise KeyError(f"unknown model {version!r}")

    host = ModelHost(["nope.v1"], device="cpu", builder=broken)
    with pytest.raises(KeyError, match=r"nope\.v1"):
        await host.load_all()


def test_cuda_falls_back_to_cpu_when_absent() -> None:
    assert resolve_device("cuda", cuda_available=False) == "cpu"
    assert resolve_device("cuda", cuda_available=True) == "cuda"
    assert resolve_device("cpu", cuda_available=True) == "cpu"
    assert resolve_device("auto", cuda_available=True) == "cuda"
    assert resolve_device("auto", cuda_available=False) == "cpu"


def test_warmup_images_are_square_rgb() -> None:
    content, style = warmup_images(32)
    assert content.shape == style.shape == (32, 32, 3)
    assert content.dtype == style.dtype == np.uint8
