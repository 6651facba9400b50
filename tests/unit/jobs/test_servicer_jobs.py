"""JobsService job RPCs on a real in-process server: create, get, list, cancel, watch."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest

from gouache.bus import subjects
from gouache.contracts.common.v1 import common_pb2
from gouache.contracts.events.v1 import events_pb2
from gouache.contracts.jobs.v1 import jobs_pb2
from gouache.db import new_id
from gouache.ratelimit.calls import CallLimiter
from gouache.ratelimit.limiter import RateLimiter
from gouache.ratelimit.plans import PlanLimit
from gouache.results import ResultLink
from services.jobs.app import JobsApp, JobsConfig
from services.jobs.domain.jobs import (
    ExecutionFailed,
    ExecutionProgress,
    ExecutionSucceeded,
)
from tests.unit.jobs.conftest import Harness, make_app, start_harness, stop_harness
from tests.unit.jobs.helpers import InMemoryImages, expect_error
from tests.unit.ratelimit.memory_store import MemoryStore

INVALID = grpc.StatusCode.INVALID_ARGUMENT


async def test_create_job_stores_pending_job_and_one_created_event(jobs: Harness) -> None:
    request = jobs.job_request(styles=2, params=common_pb2.StylizeParams(alpha=0.7, weights=[1, 3]))
    response = await jobs.stub.CreateJob(request, metadata=jobs.auth(), timeout=10)
    assert response.job_id.startswith("job_")
    assert response.status == "pending"
    assert response.model_version == "gatys.lite0-v1"
    assert response.eta_seconds == 60
    events = await jobs.outbox_events()
    assert [subject for subject, _ in events] == [subjects.job_created_subject("export", "free")]
    created = events_pb2.JobCreated.FromString(
        (await jobs.outbox_payloads(subjects.job_created_subject("export", "free")))[0]
    )
    assert created.event_id == events[0][1]
    assert created.job_id == response.job_id
    assert created.owner_id == "usr_alice"
    assert created.model_version == "gatys.lite0-v1"
    assert created.content_image_id == request.content_url.rsplit("/", 1)[-1]
    assert list(created.style_image_ids) == [u.rsplit("/", 1)[-1] for u in request.style_urls]
    assert created.params.alpha == pytest.approx(0.7)
    assert created.params.output_format == "png"
    assert jobs.images.resolved[0] == (request.content_url, "usr_alice")


async def test_alias_and_version_choose_the_model(jobs: Harness) -> None:
    fast = await jobs.create(model_version="gatys-fast")
    assert (fast.model_version, fast.eta_seconds) == ("gatys.lite0-fast", 5)
    pinned = await jobs.create(model_version="gatys.lite0-fast")
    assert pinned.model_version == "gatys.lite0-fast"
    got = await _get(jobs, fast.job_id)
    assert got.requested_model_version == "gatys-fast"
    assert got.model_version == "gatys.lite0-fast"


async def test_curated_styles_are_usable_by_everyone(jobs: Harness) -> None:
    request = jobs.job_request()
    request.style_urls[:] = [jobs.images.add(None)]
    response = await jobs.stub.CreateJob(request, metadata=jobs.auth(), timeout=10)
    assert response.status == "pending"


@pytest.mark.parametrize("via", ["field", "header"])
async def test_idempotent_retry_returns_the_same_job(jobs: Harness, via: str) -> None:
    request = jobs.job_request()
    metadata = jobs.auth()
    if via == "field":
        request.idempotency_key = "order-42"
    else:
        metadata = (*metadata, ("idempotency-key", "order-42"))
    first = await jobs.stub.CreateJob(request, metadata=metadata, timeout=10)
    second = await jobs.stub.CreateJob(request, metadata=metadata, timeout=10)
    assert second.job_id == first.job_id
    assert len(await jobs.outbox_events()) == 1
    other_user = jobs.job_request("usr_bob")
    other_user.idempotency_key = "order-42"
    third = await jobs.stub.CreateJob(other_user, metadata=jobs.auth("usr_bob"), timeout=10)
    assert third.job_id != first.job_id


async def test_idempotency_key_with_other_parameters_is_refused(jobs: Harness) -> None:
    request = jobs.job_request(idempotency_key="k1")
    first = await jobs.stub.CreateJob(request, metadata=jobs.auth(), timeout=10)
    request.params.alpha = 0.2
    await expect_error(
        jobs.stub.CreateJob(request, metadata=jobs.auth(), timeout=10),
        grpc.StatusCode.ALREADY_EXISTS,
        field="idempotency_key",
        contains=(first.job_id, "different parameters"),
    )


async def test_concurrent_retries_create_one_job(jobs: Harness) -> None:
    request = jobs.job_request(idempotency_key="race")
    responses = await asyncio.gather(
        *(jobs.stub.CreateJob(request, metadata=jobs.auth(), timeout=10) for _ in range(6))
    )
    assert len({r.job_id for r in responses}) == 1
    assert len(await jobs.outbox_events()) == 1


async def test_header_and_field_keys_must_agree(jobs: Harness) -> None:
    await expect_error(
        jobs.stub.CreateJob(
            jobs.job_request(idempotency_key="a"),
            metadata=(*jobs.auth(), ("idempotency-key", "b")),
            timeout=10,
        ),
        INVALID,
        field="idempotency_key",
    )


def _params(**kwargs: object) -> common_pb2.StylizeParams:
    return common_pb2.StylizeParams(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "styles", "field", "text"),
    [
        ({"params": _params(alpha=1.7)}, 1, "params.alpha", "between 0 and 1, got 1.7"),
        ({}, 0, "style_urls", "at least one style"),
        ({}, 5, "style_urls", "at most 4"),
        ({"params": _params(weights=[1.0])}, 2, "params.weights", "one weight per style"),
        ({"params": _params(weights=[0.0, 0.0])}, 2, "params.weights", "positive"),
        ({"params": _params(weights=[-1.0, 2.0])}, 2, "params.weights[0]", "0 or more"),
        ({"params": _params(tv_weight=-1)}, 1, "params.tv_weight", "0 or more"),
        ({"params": _params(tile_size=63)}, 1, "params.tile_size", "between 64 and 2048"),
        ({"params": _params(output_format="bmp")}, 1, "params.output_format", "png, jpeg, webp"),
        ({"params": _params(quality=0)}, 1, "params.quality", "between 1 and 100"),
        ({"params": _params(prompt="p" * 501)}, 1, "params.prompt", "at most 500"),
        ({"idempotency_key": "k" * 201}, 1, "idempotency_key", "at most 200"),
        ({"model_version": "adain-1.0"}, 1, "model_version", "aliases: default, gatys"),
        # Overlap is checked against the chosen model's tile size (256 for gatys-fast).
        (
            {"model_version": "gatys-fast", "params": _params(overlap=200)},
            1,
            "params.overlap",
            "half of the tile size 256",
        ),
    ],
)
async def test_create_job_bad_input(
    jobs: Harness, fields: dict[str, Any], styles: int, field: str, text: str
) -> None:
    request = jobs.job_request(styles=styles, **fields)
    await expect_error(
        jobs.stub.CreateJob(request, metadata=jobs.auth(), timeout=10),
        INVALID,
        field=field,
        contains=(text,),
    )
    assert await jobs.outbox_events() == []


async def test_content_url_is_required(jobs: Harness) -> None:
    request = jobs.job_request()
    request.content_url = ""
    await expect_error(
        jobs.stub.CreateJob(request, metadata=jobs.auth(), timeout=10), INVALID, field="content_url"
    )


async def test_another_users_image_is_not_found(jobs: Harness) -> None:
    request = jobs.job_request()
    request.content_url = jobs.images.add("usr_bob")
    await expect_error(
        jobs.stub.CreateJob(request, metadata=jobs.auth(), timeout=10),
        grpc.StatusCode.NOT_FOUND,
        field="content_url",
        contains=("content_url: image",),
    )


async def test_unfinished_upload_names_the_style(jobs: Harness) -> None:
    request = jobs.job_request(styles=2)
    request.style_urls[1] = jobs.images.add("usr_alice", pending=True)
    await expect_error(
        jobs.stub.CreateJob(request, metadata=jobs.auth(), timeout=10),
        grpc.StatusCode.FAILED_PRECONDITION,
        field="style_urls[1]",
        contains=("style_urls[1]: upload", "PUT the image"),
    )
    assert await jobs.outbox_events() == []


async def test_rate_limit(tmp_path: Path) -> None:
    # CreateJob is limited by the call interceptor's guard, like every other public call.
    images = InMemoryImages()
    guard = CallLimiter(
        "jobs", RateLimiter(MemoryStore()), {"free": PlanLimit(per_minute=60, burst=2)}
    )
    harness = await start_harness(
        await make_app(f"sqlite+aiosqlite:///{tmp_path / 'rl.db'}", images), images, guard=guard
    )
    try:
        await harness.create()
        await harness.create()
        await expect_error(
            harness.create(),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            contains=("60 requests per minute for plan free exceeded", "retry in"),
        )
        assert (await harness.create("usr_bob")).status == "pending"
    finally:
        await stop_harness(harness)


async def test_scopes_are_enforced(jobs: Harness) -> None:
    request = jobs.job_request()
    await expect_error(jobs.stub.CreateJob(request, timeout=10), grpc.StatusCode.UNAUTHENTICATED)
    await expect_error(
        jobs.stub.CreateJob(request, metadata=jobs.auth(scopes=("read:jobs",)), timeout=10),
        grpc.StatusCode.PERMISSION_DENIED,
    )


async def _get(
    jobs: Harness,
    job_id: str,
    user: str = "usr_alice",
    metadata: tuple[tuple[str, str], ...] | None = None,
) -> jobs_pb2.Job:
    response = await jobs.stub.GetJob(
        jobs_pb2.GetJobRequest(job_id=job_id), metadata=metadata or jobs.auth(user), timeout=10
    )
    job: jobs_pb2.Job = response
    return job


async def test_get_job_shows_the_result_url_once_succeeded(jobs: Harness) -> None:
    created = await jobs.create()
    job = await _get(jobs, created.job_id)
    assert job.status == "pending"
    assert not job.HasField("result_url")
    assert job.created_at.seconds > 0
    await jobs.app.apply_execution(
        new_id("evt"), created.job_id, ExecutionSucceeded(result_image_id="img_result")
    )
    job = await _get(jobs, created.job_id)
    assert job.status == "succeeded"
    assert job.result_image_id == "img_result"
    assert job.result_url == "http://127.0.0.1:8080/v1/files/img_result?expires=3600&sig=test"
    assert job.progress == 1.0
    assert job.latency_ms >= 0


async def test_the_url_storage_signed_for_the_worker_is_served_without_signing_again(
    jobs: Harness,
) -> None:
    created = await jobs.create()
    link = ResultLink(
        url="http://127.0.0.1:8080/v1/files/img_result?expires=9&sig=upload",
        url_expires_at=datetime.now(UTC) + timedelta(hours=1),
    )
    await jobs.app.apply_execution(
        new_id("evt"), created.job_id, ExecutionSucceeded(result_image_id="img_result", link=link)
    )
    job = await _get(jobs, created.job_id)
    assert job.result_url == link.url
    assert jobs.app.result_links.hits == 1


async def test_get_job_of_a_failed_job_shows_the_error(jobs: Harness) -> None:
    created = await jobs.create()
    await jobs.app.apply_execution(
        new_id("evt"), created.job_id, ExecutionFailed("INVALID_ARGUMENT", "image too small")
    )
    job = await _get(jobs, created.job_id)
    assert (job.status, job.error, job.error_code) == (
        "failed",
        "image too small",
        "INVALID_ARGUMENT",
    )


async def test_get_job_bad_input(jobs: Harness) -> None:
    created = await jobs.create()
    for user, job_id, code, field in [
        ("usr_bob", created.job_id, grpc.StatusCode.NOT_FOUND, "job_id"),
        ("usr_alice", new_id("job"), grpc.StatusCode.NOT_FOUND, "job_id"),
        ("usr_alice", "job_nope", INVALID, "job_id"),
        ("usr_alice", "", INVALID, "job_id"),
    ]:
        await expect_error(_get(jobs, job_id, user), code, field=field)


async def test_admin_sees_any_job(jobs: Harness) -> None:
    created = await jobs.create()
    job = await _get(jobs, created.job_id, metadata=jobs.admin())
    assert job.job_id == created.job_id


async def _list(jobs: Harness, user: str = "usr_alice", **fields: Any) -> jobs_pb2.ListJobsResponse:
    response: jobs_pb2.ListJobsResponse = await jobs.stub.ListJobs(
        jobs_pb2.ListJobsRequest(**fields),
        metadata=jobs.auth(user),
        timeout=10,
    )
    return response


async def test_list_jobs_pages_newest_first(jobs: Harness) -> None:
    created = [(await jobs.create()).job_id for _ in range(5)]
    await jobs.create("usr_bob")
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await _list(jobs, page_size=2, page_token=token)
        seen += [job.job_id for job in page.jobs]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert pages == 3
    assert seen == list(reversed(created))
    assert len((await _list(jobs)).jobs) == 5


async def test_list_jobs_filters_by_status(jobs: Harness) -> None:
    first = await jobs.create()
    await jobs.create()
    await _cancel(jobs, first.job_id)
    canceled = await _list(jobs, status="canceled")
    assert [job.job_id for job in canceled.jobs] == [first.job_id]
    assert len((await _list(jobs, status="pending")).jobs) == 1
    assert (await _list(jobs, status="succeeded")).jobs == []


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"page_size": 101}, "page_size"),
        ({"page_size": -1}, "page_size"),
        ({"page_token": "not-a-token"}, "page_token"),
        ({"status": "done"}, "status"),
    ],
)
async def test_list_jobs_bad_input(jobs: Harness, fields: dict[str, Any], field: str) -> None:
    await expect_error(_list(jobs, **fields), INVALID, field=field)


async def _cancel(jobs: Harness, job_id: str, user: str = "usr_alice") -> jobs_pb2.Job:
    response = await jobs.stub.CancelJob(
        jobs_pb2.CancelJobRequest(job_id=job_id), metadata=jobs.auth(user), timeout=10
    )
    job: jobs_pb2.Job = response
    return job


async def test_cancel_job(jobs: Harness) -> None:
    created = await jobs.create()
    job = await _cancel(jobs, created.job_id)
    assert job.status == "canceled"
    assert [s for s, _ in await jobs.outbox_events()] == [
        subjects.job_created_subject("export", "free"),
        subjects.JOBS_CANCELED,
    ]
    canceled = events_pb2.JobCanceled.FromString(
        (await jobs.outbox_payloads(subjects.JOBS_CANCELED))[0]
    )
    assert (canceled.job_id, canceled.owner_id) == (created.job_id, "usr_alice")
    again = await _cancel(jobs, created.job_id)
    assert again.status == "canceled"
    assert len(await jobs.outbox_events()) == 2


async def test_cancel_a_running_job(jobs: Harness) -> None:
    created = await jobs.create()
    await jobs.app.apply_execution(new_id("evt"), created.job_id, ExecutionProgress(0.5))
    assert (await _cancel(jobs, created.job_id)).status == "canceled"


async def test_cancel_bad_input(jobs: Harness) -> None:
    created = await jobs.create()
    await jobs.app.apply_execution(
        new_id("evt"), created.job_id, ExecutionSucceeded(result_image_id="img_r")
    )
    await expect_error(
        _cancel(jobs, created.job_id),
        grpc.StatusCode.FAILED_PRECONDITION,
        contains=("already succeeded",),
    )
    other = await jobs.create()
    await expect_error(_cancel(jobs, other.job_id, "usr_bob"), grpc.StatusCode.NOT_FOUND)
    await expect_error(_cancel(jobs, "nope"), INVALID, field="job_id")
    assert (await _get(jobs, other.job_id)).status == "pending"


async def test_watch_job_streams_until_final(jobs: Harness) -> None:
    created = await jobs.create()
    stream = jobs.stub.WatchJob(
        jobs_pb2.WatchJobRequest(job_id=created.job_id), metadata=jobs.auth(), timeout=10
    )
    seen: list[tuple[str, float]] = []

    async def drive() -> None:
        for outcome in (
            ExecutionProgress(0.25),
            ExecutionProgress(0.75),
            ExecutionSucceeded(result_image_id="img_r"),
        ):
            await asyncio.sleep(0.05)
            await jobs.app.apply_execution(new_id("evt"), created.job_id, outcome)

    first = await stream.read()
    seen.append((first.job.status, first.job.progress))
    driver = asyncio.create_task(drive())
    while (response := await stream.read()) is not grpc.aio.EOF:
        seen.append((response.job.status, response.job.progress))
        last = response
    await driver
    assert seen[0] == ("pending", 0.0)
    assert seen[-1] == ("succeeded", 1.0)
    assert last.job.result_url
    assert ("running", 0.25) in seen or ("running", 0.75) in seen
    statuses = [status for status, _ in seen]
    assert statuses == sorted(statuses, key=["pending", "running", "succeeded"].index)
    assert [p for _, p in seen] == sorted(p for _, p in seen)


async def test_watch_a_final_job_sends_it_once(jobs: Harness) -> None:
    created = await jobs.create()
    await _cancel(jobs, created.job_id)
    stream = jobs.stub.WatchJob(
        jobs_pb2.WatchJobRequest(job_id=created.job_id), metadata=jobs.auth(), timeout=10
    )
    assert [r.job.status async for r in stream] == ["canceled"]


async def test_watch_sees_changes_made_by_another_replica(jobs: Harness) -> None:
    replica = JobsApp(jobs.store, jobs.images, jobs.images, config=JobsConfig())
    created = await jobs.create()
    stream = jobs.stub.WatchJob(
        jobs_pb2.WatchJobRequest(job_id=created.job_id), metadata=jobs.auth(), timeout=10
    )
    assert (await stream.read()).job.status == "pending"
    await replica.apply_execution(new_id("evt"), created.job_id, ExecutionFailed("INTERNAL", "x"))
    update = await asyncio.wait_for(stream.read(), timeout=1.5)
    assert update.job.status == "failed"


async def test_watch_bad_input(jobs: Harness) -> None:
    created = await jobs.create()
    for user, job_id, code in [
        ("usr_bob", created.job_id, grpc.StatusCode.NOT_FOUND),
        ("usr_alice", "job_1", INVALID),
    ]:
        stream = jobs.stub.WatchJob(
            jobs_pb2.WatchJobRequest(job_id=job_id), metadata=jobs.auth(user), timeout=10
        )
        await expect_error(stream.read(), code, field="job_id")


def _wait(
    jobs: Harness, job_id: str, timeout_s: float | None = None, user: str = "usr_alice"
) -> Any:
    request = jobs_pb2.WaitJobRequest(job_id=job_id)
    if timeout_s is not None:
        request.timeout.FromNanoseconds(round(timeout_s * 1e9))
    return jobs.stub.WaitJob(request, metadata=jobs.auth(user), timeout=10)


async def test_wait_job_returns_as_soon_as_the_job_is_final(jobs: Harness) -> None:
    created = await jobs.create()

    async def finish() -> None:
        await asyncio.sleep(0.2)
        await jobs.app.apply_execution(new_id("evt"), created.job_id, ExecutionProgress(0.5))
        await asyncio.sleep(0.1)
        await jobs.app.apply_execution(
            new_id("evt"), created.job_id, ExecutionSucceeded(result_image_id="img_r")
        )

    driver = asyncio.create_task(finish())
    started = asyncio.get_running_loop().time()
    job = await _wait(jobs, created.job_id, timeout_s=8)
    waited = asyncio.get_running_loop().time() - started
    await driver
    # Not at the progress event, not at the 8 s timeout: when the job ended.
    assert job.status == "succeeded"
    assert job.result_url
    assert 0.25 <= waited < 4


async def test_wait_job_answers_the_job_as_it_is_when_the_timeout_passes(jobs: Harness) -> None:
    created = await jobs.create()
    started = asyncio.get_running_loop().time()
    job = await _wait(jobs, created.job_id, timeout_s=0.4)
    waited = asyncio.get_running_loop().time() - started
    assert job.status == "pending"
    assert 0.35 <= waited < 4
    # A final job is answered at once.
    await _cancel(jobs, created.job_id)
    assert (await _wait(jobs, created.job_id)).status == "canceled"


async def test_wait_job_bad_input(jobs: Harness) -> None:
    created = await jobs.create()
    await expect_error(
        _wait(jobs, created.job_id, timeout_s=61),
        INVALID,
        field="timeout",
        contains=["between 0 and 60 s"],
    )
    await expect_error(_wait(jobs, created.job_id, timeout_s=-1), INVALID, field="timeout")
    await expect_error(
        _wait(jobs, created.job_id, timeout_s=1, user="usr_bob"),
        grpc.StatusCode.NOT_FOUND,
        field="job_id",
    )
    await expect_error(_wait(jobs, "job_1", timeout_s=1), INVALID, field="job_id")
