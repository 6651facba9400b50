"""A job canceled while its inference call is in flight cancels that call at once."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from services.tiling.domain import CanceledJobs, JobParams, Outcome, Pixels, StyleInput
from tests.unit.tiling.test_runner import JOB_ID, Harness, _image


class _EndlessInference:
    """An inference call that never answers (a long optimisation); records how it ended."""

    def __init__(self) -> None:
        self.in_flight = asyncio.Event()
        self.cancelled = 0
        self.calls = 0

    async def stylize_batch(
        self,
        model_version: str,
        tiles: Sequence[Pixels],
        styles: Sequence[StyleInput],
        params: JobParams,
        *,
        endpoint: str = "",
    ) -> list[Pixels]:
        self.calls += 1
        self.in_flight.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        raise AssertionError("unreachable")


def _harness(inference: _EndlessInference) -> Harness:
    harness = Harness(_image(300, 200), tile_size=128, batch_size=2)
    # The harness builds its runner over a fake that answers at once; this one never does.
    harness.runner._inference = inference
    return harness


async def test_the_call_in_flight_is_cancelled_when_the_job_is() -> None:
    inference = _EndlessInference()
    harness = _harness(inference)
    run = asyncio.create_task(harness.runner.run(harness.job()))
    await asyncio.wait_for(inference.in_flight.wait(), timeout=10)

    harness.canceled.add(JOB_ID)

    assert await asyncio.wait_for(run, timeout=1.0) is Outcome.CANCELED
    assert inference.calls == 1
    assert inference.cancelled == 1
    assert harness.storage.uploads == []
    assert harness.events.of_kind("succeeded") == []
    assert harness.events.of_kind("failed") == []


async def test_another_jobs_cancellation_leaves_the_call_alone() -> None:
    inference = _EndlessInference()
    harness = _harness(inference)
    run = asyncio.create_task(harness.runner.run(harness.job()))
    await asyncio.wait_for(inference.in_flight.wait(), timeout=10)

    harness.canceled.add("job_01JOTHEROTHEROTHEROTHEROT")

    assert inference.cancelled == 0
    assert not run.done()
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run


async def test_a_worker_shutting_down_is_not_mistaken_for_a_cancel() -> None:
    inference = _EndlessInference()
    harness = _harness(inference)
    run = asyncio.create_task(harness.runner.run(harness.job()))
    await asyncio.wait_for(inference.in_flight.wait(), timeout=10)
    harness.canceled.add(JOB_ID)
    run.cancel()  # the worker stops in the same turn of the loop

    with pytest.raises(asyncio.CancelledError):
        await run
    assert inference.cancelled == 1


def test_watch_calls_back_once_and_forgets_its_watcher() -> None:
    canceled = CanceledJobs(10)
    calls: list[str] = []
    with canceled.watch("job_a", lambda: calls.append("a")):
        canceled.add("job_b")
        canceled.add("job_a")
        canceled.add("job_a")
    canceled.add("job_a")
    assert calls == ["a"]
    with canceled.watch("job_a", lambda: calls.append("again")):
        pass
    assert calls == ["a", "again"]  # already canceled when the watch began
    assert not canceled._watchers
