"""The success a runner reports names the device kind its model ran on, for usage."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from services.tiling.domain.runner import JobRunner
from tests.unit.tiling.test_runner import Harness, _constant, _image


def _harness(device_for: Callable[[str, str], Awaitable[str]]) -> Harness:
    harness = Harness(_image(64, 48))
    harness.runner = JobRunner(
        harness.storage,
        harness.inference,
        harness.events,
        canceled=harness.canceled,
        tile_size_for=_constant(256),
        device_for=device_for,
    )
    return harness


async def test_the_success_names_the_device_the_endpoint_reports() -> None:
    asked: list[tuple[str, str]] = []

    async def device_for(version: str, endpoint: str) -> str:
        asked.append((version, endpoint))
        return "cuda"

    harness = _harness(device_for)
    await harness.runner.run(harness.job())

    kind, fields = harness.events.published[-1]
    assert kind == "succeeded"
    assert fields["device"] == "cuda"
    assert fields["compute_ms"] >= 0
    assert asked == [("gatys.lite0-fast", "")]


async def test_a_device_lookup_that_fails_loses_only_the_device() -> None:
    async def broken(version: str, endpoint: str) -> str:
        raise ConnectionError("inference went away")

    harness = _harness(broken)
    await harness.runner.run(harness.job())

    kind, fields = harness.events.published[-1]
    assert kind == "succeeded"
    assert "device" not in fields
