"""A batch ends exactly once when its items finish at the same time, on SQLite and PostgreSQL.

Every item's completion runs in its own transaction, concurrently. The one that makes the
last item final must see every other item final and end the batch, and no other may: a
settle that counts without the batch's row lock either ends it twice (two webhooks) or
never (each sees the other's item still running).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from gouache.db import new_id
from gouache.runtime.context import Principal
from services.jobs.app import JobsApp
from services.jobs.domain.batches import BatchRequest
from services.jobs.domain.jobs import (
    ExecutionFailed,
    ExecutionOutcome,
    ExecutionSucceeded,
    JobStatus,
)
from services.jobs.store import UnitOfWork
from tests.unit.jobs.conftest import make_app
from tests.unit.jobs.helpers import InMemoryImages

ALICE = Principal(user_id="usr_alice", role="user")
ITEMS = 8
ROUNDS = 3


@pytest.fixture
def images() -> InMemoryImages:
    return InMemoryImages()


@pytest.fixture
async def app(db_url: str, images: InMemoryImages) -> AsyncIterator[JobsApp]:
    app = await make_app(db_url, images)
    try:
        yield app
    finally:
        await app.store.close()


async def _batch(app: JobsApp, images: InMemoryImages) -> list[str]:
    request = BatchRequest(
        content_urls=tuple(images.add("usr_alice") for _ in range(ITEMS)),
        style_urls=(images.add("usr_alice"),),
    )
    view = await app.batches.create_batch(ALICE, request)
    assert view.batch.total == ITEMS
    return [view.batch.batch_id, *(item.job.job_id for item in view.items)]


async def test_concurrent_completions_end_the_batch_once(
    app: JobsApp, images: InMemoryImages, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Widen the window between counting a batch's items and committing, so completions
    # that are not serialized by the batch's lock all count before any commits.
    counted = UnitOfWork.batch_counts

    async def slow_count(self: UnitOfWork, batch_id: str) -> dict[JobStatus, int]:
        counts = await counted(self, batch_id)
        await asyncio.sleep(0.05)
        return counts

    monkeypatch.setattr(UnitOfWork, "batch_counts", slow_count)
    await app.create_webhook(ALICE, "https://example.com/hook", "s" * 16, ["batch.finished"])
    for _ in range(ROUNDS):
        batch_id, *job_ids = await _batch(app, images)
        outcomes: list[ExecutionOutcome] = [
            ExecutionSucceeded(images.add_result("usr_alice"))
            if i % 3
            else ExecutionFailed("X", "no")
            for i in range(ITEMS)
        ]
        applied = await asyncio.gather(
            *(
                app.apply_execution(new_id("evt"), job_id, outcome)
                for job_id, outcome in zip(job_ids, outcomes, strict=True)
            )
        )
        assert all(applied)
        view = await app.batches.get_batch(ALICE, batch_id)
        assert view.batch.status.value == "partially_succeeded"
        deliveries = await app.store.deliveries_for_job(batch_id)
        assert [d.event for d in deliveries] == ["batch.finished"]
        counts = json.loads(deliveries[0].payload)["batch"]["counts"]
        assert (counts["succeeded"], counts["failed"]) == (ITEMS - 3, 3)


async def test_cancel_racing_completions_ends_the_batch_once(
    app: JobsApp, images: InMemoryImages
) -> None:
    await app.create_webhook(ALICE, "https://example.com/hook", "s" * 16, ["batch.finished"])
    for _ in range(ROUNDS):
        batch_id, *job_ids = await _batch(app, images)
        await asyncio.gather(
            app.batches.cancel_batch(ALICE, batch_id),
            *(
                app.apply_execution(
                    new_id("evt"), job_id, ExecutionSucceeded(images.add_result("usr_alice"))
                )
                for job_id in job_ids
            ),
        )
        view = await app.batches.get_batch(ALICE, batch_id)
        finished = sum(view.counts.values())
        assert finished == ITEMS
        deliveries = await app.store.deliveries_for_job(batch_id)
        assert [d.event for d in deliveries] == ["batch.finished"]
        body = json.loads(deliveries[0].payload)["batch"]
        # Whichever committed first decided: the cancel, or the last completion.
        assert body["status"] == view.batch.status.value
        assert body["status"] in ("canceled", "succeeded")
