"""A cancelled or deadline-exceeded Stylize call stops its gatys optimisation and frees the slot.

The server runs in process with one concurrency slot and two versions: a real gatys that
optimises (almost) forever once armed, and an identity model. A second call queued behind
the gatys call answers only once the gatys thread has left the slot, so its answer
within a few seconds of the cancel proves the computation stopped (before this work the
thread ran every step it was asked for, tens of seconds at production settings).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence

import grpc
import pytest
import torch
from prometheus_client import REGISTRY

from gouache.contracts.inference.v1 import inference_pb2, inference_pb2_grpc
from gouache.nst.base import (
    Cancellation,
    RGBImage,
    StyleFamily,
    StylizeControls,
    check_cancellation,
)
from gouache.nst.encoders import Lite0Encoder, load_lite0
from gouache.nst.families.gatys import GatysConfig, GatysFamily
from services.inference.domain import ModelHost, Params, RawImage, RawStyle, StylizeTask
from services.inference.settings import InferenceSettings
from tests.unit.inference.fakes import IdentityFamily, rgb, service, serving

LONG = "gatys.long"
IDENTITY = "identity.v1"
# Generous on a loaded 2-core machine; the thread stops within one step (~0.1 s here).
FREED_WITHIN_S = 3.0


class _CountingEncoder(torch.nn.Module):
    """Lite0, counting the forward passes that build a graph (one per optimisation step)."""

    def __init__(self, inner: Lite0Encoder) -> None:
        super().__init__()
        self.inner = inner
        self.taps = inner.taps
        self.steps = 0

    def forward_features(self, image: torch.Tensor, taps: list[str]) -> dict[str, torch.Tensor]:
        if torch.is_grad_enabled() and image.requires_grad:
            self.steps += 1
        return dict(self.inner.forward_features(image, taps))


class _ArmedGatys:
    """Real gatys: a few steps for the warm-up, then 100,000 steps per call once armed."""

    name = "gatys"

    def __init__(self) -> None:
        self.encoder = _CountingEncoder(load_lite0())
        self._short = GatysFamily(GatysConfig(steps=2), self.encoder)  # type: ignore[arg-type]
        self._long = GatysFamily(GatysConfig(steps=100_000), self.encoder)  # type: ignore[arg-type]
        self.armed = False

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
        family = self._long if self.armed else self._short
        return family.stylize(
            content, styles, weights, controls, style_keys=style_keys, cancellation=cancellation
        )


@pytest.fixture(scope="module")
def gatys() -> _ArmedGatys:
    return _ArmedGatys()


@pytest.fixture(scope="module")
def identity() -> IdentityFamily:
    return IdentityFamily()


@pytest.fixture(scope="module")
async def stub(
    gatys: _ArmedGatys, identity: IdentityFamily
) -> AsyncIterator[inference_pb2_grpc.InferenceServiceStub]:
    settings = InferenceSettings(
        port=0, models=f"{LONG},{IDENTITY}", max_concurrency=1, torch_threads=1
    )
    async with serving(settings, {LONG: gatys, IDENTITY: identity}) as stub:
        gatys.armed = True
        yield stub


def _request(version: str) -> inference_pb2.StylizeRequest:
    return inference_pb2.StylizeRequest(
        model_version=version,
        content=rgb(48, 40),
        styles=[inference_pb2.StyleInput(style_key="s", image=rgb(32, 32, seed=1))],
    )


def _canceled_count(version: str) -> float:
    value = REGISTRY.get_sample_value(
        "gouache_inference_canceled_total", {"model_version": version}
    )
    return value or 0.0


async def _until(condition: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def _optimising(gatys: _ArmedGatys) -> int:
    """Waits until the gatys call has run a few steps; returns the step count then."""
    start = gatys.encoder.steps
    await _until(lambda: gatys.encoder.steps >= start + 3, timeout_s=60)
    return gatys.encoder.steps


def _stopped_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == "canceled stylization stopped"]


async def test_a_cancelled_call_stops_its_optimisation_and_frees_the_slot(
    stub: inference_pb2_grpc.InferenceServiceStub,
    gatys: _ArmedGatys,
    identity: IdentityFamily,
    caplog: pytest.LogCaptureFixture,
) -> None:
    canceled_before = _canceled_count(LONG)
    caplog.set_level(logging.INFO, logger="services.inference.domain")
    long_call = stub.Stylize(_request(LONG), metadata=service(), timeout=300)
    await _optimising(gatys)
    # Queued behind the optimisation: one slot.
    queued = asyncio.ensure_future(
        stub.Stylize(_request(IDENTITY), metadata=service(), timeout=300)
    )
    identity_calls = identity.calls
    long_call.cancel()
    canceled_at = time.monotonic()
    answer = await asyncio.wait_for(queued, timeout=60)
    freed_after = time.monotonic() - canceled_at
    assert answer.model_version == IDENTITY
    assert identity.calls == identity_calls + 1
    assert freed_after < FREED_WITHIN_S
    with pytest.raises(asyncio.CancelledError):
        await long_call
    await _until(lambda: _canceled_count(LONG) == canceled_before + 1, timeout_s=10)
    (line,) = _stopped_lines(caplog)
    assert line.started is True  # type: ignore[attr-defined]
    assert line.outcome == "Canceled"  # type: ignore[attr-defined]
    assert line.model_version == LONG  # type: ignore[attr-defined]
    assert line.stopped_after_ms < FREED_WITHIN_S * 1000  # type: ignore[attr-defined]


async def test_a_call_past_its_deadline_stops_its_optimisation(
    stub: inference_pb2_grpc.InferenceServiceStub,
    gatys: _ArmedGatys,
    caplog: pytest.LogCaptureFixture,
) -> None:
    canceled_before = _canceled_count(LONG)
    caplog.set_level(logging.INFO, logger="services.inference.domain")
    # The first steps include building the style's Gram targets; a deadline that passes
    # mid-optimisation is what matters, so the call gets a few seconds.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Stylize(_request(LONG), metadata=service(), timeout=4)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    expired_at = time.monotonic()
    assert gatys.encoder.steps > 0
    answer = await stub.Stylize(_request(IDENTITY), metadata=service(), timeout=60)
    assert answer.model_version == IDENTITY
    assert time.monotonic() - expired_at < FREED_WITHIN_S
    await _until(lambda: _canceled_count(LONG) == canceled_before + 1, timeout_s=10)
    (line,) = _stopped_lines(caplog)
    assert line.outcome == "Canceled"  # type: ignore[attr-defined]


class _Spinning:
    """Once armed, computes until its cancellation fires (checked every 5 ms)."""

    name = "spinning"

    def __init__(self) -> None:
        self.armed = False
        self.started = threading.Event()

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
        if not self.armed:
            return content.copy()
        self.started.set()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            check_cancellation(cancellation)
            time.sleep(0.005)
        raise AssertionError("never canceled")


def _task(version: str) -> StylizeTask:
    image = RawImage(8, 6, bytes(8 * 6 * 3))
    return StylizeTask(
        model_version=version,
        images=(image,),
        styles=(RawStyle(key="s", image=image),),
        params=Params(),
    )


async def test_a_call_cancelled_while_queued_never_starts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="services.inference.domain")
    spinning, identity = _Spinning(), IdentityFamily()
    families: dict[str, StyleFamily] = {"spin": spinning, "identity": identity}
    host = ModelHost(
        {"spin.v1": "spin", "identity.v1": "identity"},
        device="cpu",
        builder=lambda model, device: families[model],
        max_concurrency=1,
    )
    await host.load_all()
    spinning.armed = True
    identity_calls = identity.calls
    running = asyncio.create_task(host.stylize(_task("spin.v1")))
    assert await asyncio.to_thread(spinning.started.wait, 30)
    queued = asyncio.create_task(host.stylize(_task("identity.v1")))
    await _until(lambda: host.waiting == 1, timeout_s=10)
    queued.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    await _until(lambda: host.waiting == 0 and len(_stopped_lines(caplog)) == 2, timeout_s=10)
    by_version = {r.model_version: r for r in _stopped_lines(caplog)}  # type: ignore[attr-defined]
    assert by_version["spin.v1"].started is True  # type: ignore[attr-defined]
    assert by_version["spin.v1"].outcome == "Canceled"  # type: ignore[attr-defined]
    assert by_version["identity.v1"].started is False  # type: ignore[attr-defined]
    assert by_version["identity.v1"].outcome == "Canceled"  # type: ignore[attr-defined]
    assert identity.calls == identity_calls
