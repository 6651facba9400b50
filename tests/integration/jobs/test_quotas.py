"""Plan quotas over real JetStream and a real database: a success adds its compute to the
owner's month, and once the plan's compute-seconds are used CreateJob and CreateBatch are
refused (RESOURCE_EXHAUSTED, quota_exceeded); cached results, admins and unlimited plans
are never counted against one."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2, status_pb2
from sqlalchemy import select

from gouache.bus import subjects
from gouache.contracts.events.v1 import events_pb2
from gouache.contracts.jobs.v1 import jobs_pb2
from gouache.db import new_id, utc_now
from services.jobs.domain.quota import QuotaPolicy, month_of
from services.jobs.quota_app import QuotaGate
from services.jobs.store.usage import compute_usage_table
from tests.integration.jobs.conftest import Mesh, wait_until
from tests.unit.jobs.helpers import expect_error

# Tight enough that one job uses the free plan's month.
POLICY = QuotaPolicy({"free": 2, "pro": 3600, "enterprise": 0})


def _tight(mesh: Mesh) -> None:
    mesh.service.app.quota = QuotaGate(mesh.service.store, POLICY)


def _auth(mesh: Mesh, user: str, **claims: object) -> tuple[tuple[str, str], ...]:
    token = mesh.signer.token(user, extra=claims) if claims else mesh.signer.token(user)
    return (("authorization", f"Bearer {token}"),)


async def _used(mesh: Mesh, owner: str) -> tuple[int, int] | None:
    table = compute_usage_table
    query = select(table.c.compute_ms, table.c.jobs).where(
        table.c.owner_id == owner, table.c.month == month_of(utc_now())
    )
    async with mesh.service.store.sessions() as session:
        row = (await session.execute(query)).first()
    return None if row is None else (int(row[0]), int(row[1]))


async def _run(mesh: Mesh, job_id: str, user: str, compute_ms: int) -> None:
    await mesh.execution(
        subjects.EXECUTION_SUCCEEDED,
        events_pb2.ExecutionSucceeded(
            event_id=new_id("evt"),
            job_id=job_id,
            result_image_id=mesh.images.add_result(user),
            compute_ms=compute_ms,
            device="cuda",
        ),
    )

    async def done() -> bool:
        job = await mesh.stub.GetJob(
            jobs_pb2.GetJobRequest(job_id=job_id), metadata=_auth(mesh, user), timeout=10
        )
        return bool(job.status == "succeeded")

    await wait_until(done, what=f"{job_id} succeeded")


def _error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    raw = dict(error.trailing_metadata() or ()).get("grpc-status-details-bin")
    assert raw is not None
    info = error_details_pb2.ErrorInfo()
    status_pb2.Status.FromString(raw).details[0].Unpack(info)
    return info


async def test_a_used_quota_refuses_jobs_and_batches_until_the_month_resets(mesh: Mesh) -> None:
    _tight(mesh)
    user = f"usr_{new_id('q')[-8:]}"
    content, style = mesh.images.add(user), mesh.images.add(None)
    request = jobs_pb2.CreateJobRequest(content_url=content, style_urls=[style])
    first = await mesh.stub.CreateJob(request, metadata=_auth(mesh, user), timeout=10)
    assert await _used(mesh, user) is None
    await _run(mesh, first.job_id, user, compute_ms=2345)
    assert await _used(mesh, user) == (2345, 1)
    # The success event carries what feedback bills.
    (done,) = await mesh.published(subjects.JOBS_SUCCEEDED, first.job_id)
    assert isinstance(done, events_pb2.JobSucceeded)
    assert (done.compute_ms, done.device) == (2345, "cuda")

    other = jobs_pb2.CreateJobRequest(content_url=mesh.images.add(user), style_urls=[style])
    error = await expect_error(
        mesh.stub.CreateJob(other, metadata=_auth(mesh, user), timeout=10),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        contains=("the free plan's 2 compute-seconds for", "are used (2 s, 0 s left)", "resets on"),
    )
    info = _error_info(error)
    assert info.reason == "quota_exceeded"
    assert info.metadata["used_compute_seconds"] == "2.345"
    assert info.metadata["quota_compute_seconds"] == "2"
    assert info.metadata["period"] == month_of(utc_now())
    batch = jobs_pb2.CreateBatchRequest(content_urls=[mesh.images.add(user)], style_urls=[style])
    await expect_error(
        mesh.stub.CreateBatch(batch, metadata=_auth(mesh, user), timeout=10),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        contains=("compute-seconds",),
    )

    # The first request again is answered from the result cache: no compute, not refused.
    again = await mesh.stub.CreateJob(request, metadata=_auth(mesh, user), timeout=10)
    assert again.cached
    assert await _used(mesh, user) == (2345, 1)
    # A larger plan, or an admin, is not refused.
    pro = await mesh.stub.CreateJob(other, metadata=_auth(mesh, user, plan="pro"), timeout=10)
    assert pro.status == "pending"
    admin = await mesh.stub.CreateJob(
        jobs_pb2.CreateJobRequest(content_url=mesh.images.add(user), style_urls=[style]),
        metadata=_auth(mesh, user, role="admin"),
        timeout=10,
    )
    assert admin.status == "pending"


async def test_a_cached_answer_is_neither_counted_nor_billed(mesh: Mesh) -> None:
    _tight(mesh)
    user = f"usr_{new_id('q')[-8:]}"
    content, style = mesh.images.add(user), mesh.images.add(None)
    request = jobs_pb2.CreateJobRequest(content_url=content, style_urls=[style])
    first = await mesh.stub.CreateJob(request, metadata=_auth(mesh, user), timeout=10)
    await _run(mesh, first.job_id, user, compute_ms=1000)
    hit = await mesh.stub.CreateJob(request, metadata=_auth(mesh, user), timeout=10)
    assert hit.cached
    assert await _used(mesh, user) == (1000, 1)

    async def published() -> bool:
        return bool(await mesh.job_events(subjects.JOBS_SUCCEEDED, hit.job_id))

    await wait_until(published, what="the cached job's JobSucceeded")
    (event,) = await mesh.job_events(subjects.JOBS_SUCCEEDED, hit.job_id)
    assert isinstance(event, events_pb2.JobSucceeded)
    assert (event.cached, event.compute_ms, event.device) == (True, 0, "")
