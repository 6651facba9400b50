"""JobsService batch RPCs on a real in-process server: create, get, list, cancel, settle."""

from __future__ import annotations

import json
import logging
from typing import Any

import grpc
import pytest
from sqlalchemy import func, select

from gouache.bus import subjects
from gouache.contracts.events.v1 import events_pb2
from gouache.contracts.jobs.v1 import jobs_pb2
from gouache.db import new_id
from services.jobs.domain.jobs import ExecutionFailed, ExecutionSucceeded
from services.jobs.store import batches_table, jobs_table
from tests.unit.jobs.conftest import Harness
from tests.unit.jobs.helpers import expect_error

INVALID = grpc.StatusCode.INVALID_ARGUMENT
SECRET = "s3cret-s3cret-s3cret"


def _batch_request(
    jobs: Harness, count: int = 3, user: str = "usr_alice", **fields: Any
) -> jobs_pb2.CreateBatchRequest:
    return jobs_pb2.CreateBatchRequest(
        content_urls=[jobs.images.add(user) for _ in range(count)],
        style_urls=[jobs.images.add(user)],
        **fields,
    )


async def _create(
    jobs: Harness, request: jobs_pb2.CreateBatchRequest, user: str = "usr_alice"
) -> jobs_pb2.Batch:
    batch: jobs_pb2.Batch = await jobs.stub.CreateBatch(
        request, metadata=jobs.auth(user), timeout=10
    )
    return batch


async def _get(jobs: Harness, batch_id: str, **fields: Any) -> jobs_pb2.Batch:
    batch: jobs_pb2.Batch = await jobs.stub.GetBatch(
        jobs_pb2.GetBatchRequest(batch_id=batch_id, **fields), metadata=jobs.auth(), timeout=10
    )
    return batch


async def _count(jobs: Harness, table: Any) -> int:
    async with jobs.store.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(table))).scalar_one())


async def _finish(jobs: Harness, job_id: str, *, ok: bool = True) -> None:
    if ok:
        outcome: Any = ExecutionSucceeded(result_image_id=jobs.images.add_result("usr_alice"))
    else:
        outcome = ExecutionFailed(error_code="INTERNAL", error_message="worker gave up")
    assert await jobs.app.apply_execution(new_id("evt"), job_id, outcome)


async def _subscribe(jobs: Harness, *events: str) -> None:
    await jobs.stub.CreateWebhook(
        jobs_pb2.CreateWebhookRequest(
            url="https://example.com/hook", secret=SECRET, events=list(events)
        ),
        metadata=jobs.auth(),
        timeout=10,
    )


async def test_create_batch_makes_one_pending_export_job_per_item(
    jobs: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="services.jobs")  # the log lines' fields must be legal
    request = _batch_request(jobs, 3, model_version="gatys")
    batch = await _create(jobs, request)
    messages = [record.getMessage() for record in caplog.records]
    assert "batch created" in messages
    assert "batch items created" in messages
    assert batch.batch_id.startswith("bat_")
    assert batch.status == "running"
    assert batch.total == 3
    assert batch.lane == "export"
    assert batch.model_version == "gatys"
    assert batch.counts.pending == 3
    assert not batch.HasField("finished_at")
    assert [item.index for item in batch.items] == [0, 1, 2]
    assert [item.content_url for item in batch.items] == list(request.content_urls)
    assert all(item.status == "pending" for item in batch.items)
    assert len({item.job_id for item in batch.items}) == 3
    for item in batch.items:
        job = await jobs.stub.GetJob(
            jobs_pb2.GetJobRequest(job_id=item.job_id), metadata=jobs.auth(), timeout=10
        )
        assert (job.lane, job.model_version) == ("export", "gatys.lite0-v1")
        assert list(job.style_urls) == list(request.style_urls)
    created = [s for s, _ in await jobs.outbox_events() if s.startswith("gouache.jobs.created")]
    assert len(created) == 3


async def test_a_bad_item_refuses_the_whole_batch(jobs: Harness) -> None:
    request = _batch_request(jobs, 3)
    request.content_urls[1] = "  "
    await expect_error(
        jobs.stub.CreateBatch(request, metadata=jobs.auth(), timeout=10),
        INVALID,
        field="content_urls[1]",
    )
    request = _batch_request(jobs, 3)
    request.content_urls[2] = jobs.images.add("usr_bob")  # another user's image
    await expect_error(
        jobs.stub.CreateBatch(request, metadata=jobs.auth(), timeout=10),
        grpc.StatusCode.NOT_FOUND,
        field="content_urls[2]",
    )
    request = _batch_request(jobs, 2, model_version="no-such-model")
    await expect_error(
        jobs.stub.CreateBatch(request, metadata=jobs.auth(), timeout=10),
        INVALID,
        field="model_version",
    )
    assert await _count(jobs, jobs_table) == 0
    assert await _count(jobs, batches_table) == 0


@pytest.mark.parametrize("via", ["field", "header"])
async def test_idempotent_retry_returns_the_same_batch(jobs: Harness, via: str) -> None:
    request = _batch_request(jobs, 2)
    metadata = jobs.auth()
    if via == "field":
        request.idempotency_key = "catalog-2026-11"
    else:
        metadata = (*metadata, ("idempotency-key", "catalog-2026-11"))
    first = await jobs.stub.CreateBatch(request, metadata=metadata, timeout=10)
    again = await jobs.stub.CreateBatch(request, metadata=metadata, timeout=10)
    assert again.batch_id == first.batch_id
    assert [i.job_id for i in again.items] == [i.job_id for i in first.items]
    assert await _count(jobs, jobs_table) == 2
    other = _batch_request(jobs, 2, idempotency_key=request.idempotency_key)
    await expect_error(
        jobs.stub.CreateBatch(other, metadata=metadata, timeout=10),
        grpc.StatusCode.ALREADY_EXISTS,
        field="idempotency_key",
    )


async def test_retry_after_an_interrupted_creation_creates_only_missing_items(
    jobs: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = jobs.app.create_job
    calls = 0

    async def crash_on_third(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise ConnectionError("database went away")
        return await original(*args, **kwargs)

    monkeypatch.setattr(jobs.app, "create_job", crash_on_third)
    request = _batch_request(jobs, 4, idempotency_key="nightly")
    await expect_error(
        jobs.stub.CreateBatch(request, metadata=jobs.auth(), timeout=10),
        grpc.StatusCode.UNAVAILABLE,  # the client is told to retry
    )
    assert await _count(jobs, jobs_table) == 2
    monkeypatch.setattr(jobs.app, "create_job", original)
    batch = await _create(jobs, request)
    assert [item.index for item in batch.items] == [0, 1, 2, 3]
    assert batch.counts.pending == 4
    assert await _count(jobs, jobs_table) == 4
    assert await _count(jobs, batches_table) == 1


async def test_the_last_final_item_ends_the_batch_with_one_webhook(jobs: Harness) -> None:
    await _subscribe(jobs, "batch.finished")
    batch = await _create(jobs, _batch_request(jobs, 3))
    ids = [item.job_id for item in batch.items]
    await _finish(jobs, ids[0])
    await _finish(jobs, ids[1], ok=False)
    middle = await _get(jobs, batch.batch_id)
    assert middle.status == "running"
    assert (middle.counts.succeeded, middle.counts.failed, middle.counts.pending) == (1, 1, 1)
    assert await jobs.store.deliveries_for_job(batch.batch_id) == []
    await _finish(jobs, ids[2])
    done = await _get(jobs, batch.batch_id)
    assert done.status == "partially_succeeded"
    assert done.HasField("finished_at")
    assert (done.counts.succeeded, done.counts.failed) == (2, 1)
    assert done.items[0].result_url
    assert done.items[1].error_code == "INTERNAL"
    assert not done.items[1].HasField("result_url")
    # A late event for a final item changes nothing and queues nothing.
    await jobs.app.apply_execution(new_id("evt"), ids[2], ExecutionFailed("X", "late"))
    deliveries = await jobs.store.deliveries_for_job(batch.batch_id)
    assert [d.event for d in deliveries] == ["batch.finished"]
    body = json.loads(deliveries[0].payload)
    assert body["batch"]["status"] == "partially_succeeded"
    assert body["batch"]["counts"]["succeeded"] == 2
    assert body["batch"]["counts"]["failed"] == 1
    (raw,) = await jobs.outbox_payloads(subjects.JOBS_BATCH_FINISHED)
    event = events_pb2.BatchFinished.FromString(raw)
    assert (event.batch_id, event.owner_id, event.status) == (
        batch.batch_id,
        "usr_alice",
        "partially_succeeded",
    )
    assert (event.total, event.succeeded, event.failed, event.canceled) == (3, 2, 1, 0)


async def test_all_items_failed_is_a_failed_batch(jobs: Harness) -> None:
    batch = await _create(jobs, _batch_request(jobs, 2))
    for item in batch.items:
        await _finish(jobs, item.job_id, ok=False)
    assert (await _get(jobs, batch.batch_id)).status == "failed"


async def test_a_batch_answered_from_the_cache_ends_at_creation(jobs: Harness) -> None:
    await _subscribe(jobs, "batch.finished", "job.succeeded")
    request = _batch_request(jobs, 2)
    for url in request.content_urls:
        job = await jobs.stub.CreateJob(
            jobs_pb2.CreateJobRequest(content_url=url, style_urls=request.style_urls),
            metadata=jobs.auth(),
            timeout=10,
        )
        await _finish(jobs, job.job_id)
    batch = await _create(jobs, request)
    assert batch.status == "succeeded"
    assert batch.counts.succeeded == 2
    assert all(item.cached and item.result_url for item in batch.items)
    deliveries = await jobs.store.deliveries_for_job(batch.batch_id)
    assert [d.event for d in deliveries] == ["batch.finished"]
    # no_cache runs the model again: the batch waits for its items.
    again = jobs_pb2.CreateBatchRequest(
        content_urls=request.content_urls, style_urls=request.style_urls, no_cache=True
    )
    fresh = await _create(jobs, again)
    assert fresh.status == "running"
    assert fresh.counts.pending == 2


async def test_cancel_batch_cancels_what_is_not_final(jobs: Harness) -> None:
    await _subscribe(jobs, "batch.finished", "job.canceled")
    batch = await _create(jobs, _batch_request(jobs, 3))
    await _finish(jobs, batch.items[0].job_id)
    canceled = await jobs.stub.CancelBatch(
        jobs_pb2.CancelBatchRequest(batch_id=batch.batch_id), metadata=jobs.auth(), timeout=10
    )
    assert canceled.status == "canceled"
    assert (canceled.counts.succeeded, canceled.counts.canceled) == (1, 2)
    assert [item.status for item in canceled.items] == ["succeeded", "canceled", "canceled"]
    again = await jobs.stub.CancelBatch(
        jobs_pb2.CancelBatchRequest(batch_id=batch.batch_id), metadata=jobs.auth(), timeout=10
    )
    assert again.status == "canceled"
    await jobs.app.apply_execution(
        new_id("evt"), batch.items[1].job_id, ExecutionSucceeded("img_late")
    )
    deliveries = await jobs.store.deliveries_for_job(batch.batch_id)
    assert [d.event for d in deliveries] == ["batch.finished"]
    assert json.loads(deliveries[0].payload)["batch"]["status"] == "canceled"
    (raw,) = await jobs.outbox_payloads(subjects.JOBS_BATCH_FINISHED)
    event = events_pb2.BatchFinished.FromString(raw)
    assert (event.status, event.succeeded, event.canceled) == ("canceled", 1, 2)
    job_events = [s for s, _ in await jobs.outbox_events() if s == subjects.JOBS_CANCELED]
    assert len(job_events) == 2
    assert len(await jobs.store.deliveries_for_job(batch.items[1].job_id)) == 1


async def test_another_users_batch_is_not_found(jobs: Harness) -> None:
    batch = await _create(jobs, _batch_request(jobs, 1))
    for call in (
        jobs.stub.GetBatch(
            jobs_pb2.GetBatchRequest(batch_id=batch.batch_id),
            metadata=jobs.auth("usr_bob"),
            timeout=10,
        ),
        jobs.stub.CancelBatch(
            jobs_pb2.CancelBatchRequest(batch_id=batch.batch_id),
            metadata=jobs.auth("usr_bob"),
            timeout=10,
        ),
    ):
        await expect_error(call, grpc.StatusCode.NOT_FOUND, field="batch_id")
    await expect_error(
        jobs.stub.GetBatch(
            jobs_pb2.GetBatchRequest(batch_id="job_1"), metadata=jobs.auth(), timeout=10
        ),
        INVALID,
        field="batch_id",
    )
    listed = await jobs.stub.ListBatches(
        jobs_pb2.ListBatchesRequest(), metadata=jobs.auth("usr_bob"), timeout=10
    )
    assert list(listed.batches) == []


async def test_items_and_batches_are_paged(jobs: Harness) -> None:
    batch = await _create(jobs, _batch_request(jobs, 5))
    seen: list[int] = []
    token = ""
    pages = 0
    while True:
        page = await _get(jobs, batch.batch_id, page_size=2, page_token=token)
        assert page.total == 5
        assert page.counts.pending == 5
        seen.extend(item.index for item in page.items)
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert (seen, pages) == ([0, 1, 2, 3, 4], 3)
    await expect_error(
        jobs.stub.GetBatch(
            jobs_pb2.GetBatchRequest(batch_id=batch.batch_id, page_token="x"),
            metadata=jobs.auth(),
            timeout=10,
        ),
        INVALID,
        field="page_token",
    )
    newer = [await _create(jobs, _batch_request(jobs, 1)) for _ in range(2)]
    first = await jobs.stub.ListBatches(
        jobs_pb2.ListBatchesRequest(page_size=2), metadata=jobs.auth(), timeout=10
    )
    assert [b.batch_id for b in first.batches] == [newer[1].batch_id, newer[0].batch_id]
    assert all(not b.items for b in first.batches)
    rest = await jobs.stub.ListBatches(
        jobs_pb2.ListBatchesRequest(page_size=2, page_token=first.next_page_token),
        metadata=jobs.auth(),
        timeout=10,
    )
    assert [b.batch_id for b in rest.batches] == [batch.batch_id]
    assert rest.batches[0].counts.pending == 5
    assert rest.next_page_token == ""
