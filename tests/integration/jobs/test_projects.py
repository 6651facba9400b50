"""Jobs, batches and webhooks by project, over real JetStream and SQLite and PostgreSQL.

Alice and Bob are members of one shared project, Carol of another; tokens carry the
project they act in (the `project` and `project_role` claims auth issues). Another
project's resources are NOT_FOUND, lists are per project, images resolve for the project,
the job records its creator, and the monthly compute quota is the project's.
"""

from __future__ import annotations

from typing import Any

import grpc
from sqlalchemy import select

from gouache.bus import subjects
from gouache.contracts.events.v1 import events_pb2
from gouache.contracts.jobs.v1 import jobs_pb2
from gouache.db import new_id, utc_now
from services.jobs.domain.quota import QuotaPolicy, month_of
from services.jobs.quota_app import QuotaGate
from services.jobs.store import jobs_table
from services.jobs.store.erasure import ERASED_CREATOR, EventsInFlight, erase_own_rows
from services.jobs.store.usage import compute_usage_table
from tests.integration.jobs.conftest import Mesh, wait_until
from tests.unit.jobs.helpers import expect_error

NF = grpc.StatusCode.NOT_FOUND


class People:
    """Fresh ids per test (the NATS server is shared by the suite)."""

    def __init__(self) -> None:
        tag = new_id("t")[-8:].lower()
        self.shared = f"prj_shared{tag}"
        self.other = f"prj_other{tag}"
        self.alice = f"usr_alice{tag}"
        self.bob = f"usr_bob{tag}"
        self.carol = f"usr_carol{tag}"


def _auth(
    mesh: Mesh, user: str, project: str = "", role: str = "editor", **claims: Any
) -> tuple[tuple[str, str], ...]:
    extra = {"project": project, "project_role": role, **claims} if project else claims
    scopes = ("read:jobs", "write:jobs", "read:models", "write:webhooks")
    token = mesh.signer.token(user, scopes=scopes, extra=extra)
    return (("authorization", f"Bearer {token}"),)


async def _creator(mesh: Mesh, job_id: str) -> tuple[str, str]:
    query = select(jobs_table.c.owner_id, jobs_table.c.user_id).where(jobs_table.c.job_id == job_id)
    async with mesh.service.store.sessions() as session:
        row = (await session.execute(query)).one()
    return row.owner_id, row.user_id


async def _succeed(mesh: Mesh, job_id: str, owner: str, md: Any, compute_ms: int = 0) -> None:
    await mesh.execution(
        subjects.EXECUTION_SUCCEEDED,
        events_pb2.ExecutionSucceeded(
            event_id=new_id("evt"),
            job_id=job_id,
            result_image_id=mesh.images.add_result(owner),
            compute_ms=compute_ms,
            device="cuda",
        ),
    )

    async def done() -> bool:
        job = await mesh.stub.GetJob(jobs_pb2.GetJobRequest(job_id=job_id), metadata=md, timeout=10)
        return bool(job.status == "succeeded")

    await wait_until(done, what=f"{job_id} succeeded")


async def test_a_projects_jobs_are_its_members_and_not_found_elsewhere(mesh: Mesh) -> None:
    p = People()
    alice = _auth(mesh, p.alice, p.shared)
    bob = _auth(mesh, p.bob, p.shared, role="viewer")
    carol = _auth(mesh, p.carol, p.other)
    alice_alone = _auth(mesh, p.alice)  # no project claim: her personal project
    content, style = mesh.images.add(p.shared), mesh.images.add(None)
    created = await mesh.stub.CreateJob(
        jobs_pb2.CreateJobRequest(content_url=content, style_urls=[style]),
        metadata=alice,
        timeout=10,
    )
    # Storage was asked for the project's image, on the project's behalf.
    assert (content, p.shared) in mesh.images.resolved
    assert await _creator(mesh, created.job_id) == (p.shared, p.alice)

    seen = await mesh.stub.GetJob(
        jobs_pb2.GetJobRequest(job_id=created.job_id), metadata=bob, timeout=10
    )
    assert (seen.project_id, seen.user_id) == (p.shared, p.alice)
    listed = await mesh.stub.ListJobs(jobs_pb2.ListJobsRequest(), metadata=bob, timeout=10)
    assert [job.job_id for job in listed.jobs] == [created.job_id]

    for md in (carol, alice_alone):
        await expect_error(
            mesh.stub.GetJob(jobs_pb2.GetJobRequest(job_id=created.job_id), metadata=md),
            NF,
            contains=(f"job {created.job_id} not found",),
        )
        await expect_error(
            mesh.stub.CancelJob(jobs_pb2.CancelJobRequest(job_id=created.job_id), metadata=md),
            NF,
        )
        await expect_error(
            mesh.stub.WaitJob(jobs_pb2.WaitJobRequest(job_id=created.job_id), metadata=md),
            NF,
        )
        empty = await mesh.stub.ListJobs(jobs_pb2.ListJobsRequest(), metadata=md, timeout=10)
        assert list(empty.jobs) == []
    # The personal project's images are not the shared project's, and the other way round.
    await expect_error(
        mesh.stub.CreateJob(
            jobs_pb2.CreateJobRequest(content_url=mesh.images.add(p.alice), style_urls=[style]),
            metadata=alice,
        ),
        NF,
    )
    await expect_error(
        mesh.stub.CreateJob(
            jobs_pb2.CreateJobRequest(content_url=content, style_urls=[style]), metadata=carol
        ),
        NF,
    )
    # A viewer's token has no write scope in practice; even with one, another project's job
    # cannot be deleted (NOT_FOUND), and the project's own is deleted once final.
    await expect_error(
        mesh.stub.DeleteJob(jobs_pb2.DeleteJobRequest(job_id=created.job_id), metadata=carol),
        NF,
    )

    await _succeed(mesh, created.job_id, p.shared, alice)
    (event,) = await mesh.published(subjects.JOBS_SUCCEEDED, created.job_id)
    assert isinstance(event, events_pb2.JobSucceeded)
    assert (event.owner_id, event.user_id) == (p.shared, p.alice)
    await mesh.stub.DeleteJob(
        jobs_pb2.DeleteJobRequest(job_id=created.job_id), metadata=_auth(mesh, p.bob, p.shared)
    )
    await expect_error(
        mesh.stub.GetJob(jobs_pb2.GetJobRequest(job_id=created.job_id), metadata=alice), NF
    )


async def test_a_failed_jobs_event_names_its_creator(mesh: Mesh) -> None:
    p = People()
    alice = _auth(mesh, p.alice, p.shared)
    created = await mesh.stub.CreateJob(
        jobs_pb2.CreateJobRequest(
            content_url=mesh.images.add(p.shared), style_urls=[mesh.images.add(None)]
        ),
        metadata=alice,
        timeout=10,
    )
    await mesh.execution(
        subjects.EXECUTION_FAILED,
        events_pb2.ExecutionFailed(
            event_id=new_id("evt"),
            job_id=created.job_id,
            error_code="INVALID_ARGUMENT",
            error_message="unreadable content image",
        ),
    )

    async def failed() -> bool:
        return bool(await mesh.job_events(subjects.JOBS_FAILED, created.job_id))

    await wait_until(failed, what="JobFailed published")
    (event,) = await mesh.job_events(subjects.JOBS_FAILED, created.job_id)
    assert isinstance(event, events_pb2.JobFailed)
    assert (event.owner_id, event.user_id) == (p.shared, p.alice)


async def test_batches_and_webhooks_are_per_project(mesh: Mesh) -> None:
    p = People()
    alice = _auth(mesh, p.alice, p.shared)
    bob = _auth(mesh, p.bob, p.shared)
    carol = _auth(mesh, p.carol, p.other)
    batch = await mesh.stub.CreateBatch(
        jobs_pb2.CreateBatchRequest(
            content_urls=[mesh.images.add(p.shared), mesh.images.add(p.shared)],
            style_urls=[mesh.images.add(None)],
        ),
        metadata=alice,
        timeout=10,
    )
    got = await mesh.stub.GetBatch(
        jobs_pb2.GetBatchRequest(batch_id=batch.batch_id, page_size=10), metadata=bob, timeout=10
    )
    assert got.total == 2
    assert {(await _creator(mesh, item.job_id)) for item in got.items} == {(p.shared, p.alice)}
    listed = await mesh.stub.ListBatches(jobs_pb2.ListBatchesRequest(), metadata=bob, timeout=10)
    assert [b.batch_id for b in listed.batches] == [batch.batch_id]
    for call in (
        mesh.stub.GetBatch(jobs_pb2.GetBatchRequest(batch_id=batch.batch_id), metadata=carol),
        mesh.stub.CancelBatch(jobs_pb2.CancelBatchRequest(batch_id=batch.batch_id), metadata=carol),
        mesh.stub.GetBatch(
            jobs_pb2.GetBatchRequest(batch_id=batch.batch_id), metadata=_auth(mesh, p.alice)
        ),
    ):
        await expect_error(call, NF, contains=(f"batch {batch.batch_id} not found",))
    other = await mesh.stub.ListBatches(jobs_pb2.ListBatchesRequest(), metadata=carol, timeout=10)
    assert list(other.batches) == []

    hook = await mesh.stub.CreateWebhook(
        jobs_pb2.CreateWebhookRequest(
            url="http://127.0.0.1:9/hook", secret="s" * 32, events=["job.succeeded"]
        ),
        metadata=alice,
        timeout=10,
    )
    hooks = await mesh.stub.ListWebhooks(jobs_pb2.ListWebhooksRequest(), metadata=bob)
    assert [h.webhook_id for h in hooks.webhooks] == [hook.webhook.webhook_id]
    assert (
        list(
            (await mesh.stub.ListWebhooks(jobs_pb2.ListWebhooksRequest(), metadata=carol)).webhooks
        )
        == []
    )
    await expect_error(
        mesh.stub.DeleteWebhook(
            jobs_pb2.DeleteWebhookRequest(webhook_id=hook.webhook.webhook_id), metadata=carol
        ),
        NF,
        field="webhook_id",
    )
    await mesh.stub.DeleteWebhook(
        jobs_pb2.DeleteWebhookRequest(webhook_id=hook.webhook.webhook_id), metadata=bob
    )
    assert (
        list(
            (await mesh.stub.ListWebhooks(jobs_pb2.ListWebhooksRequest(), metadata=alice)).webhooks
        )
        == []
    )


async def test_the_compute_quota_is_the_projects(mesh: Mesh) -> None:
    mesh.service.app.quota = QuotaGate(
        mesh.service.store, QuotaPolicy({"free": 2, "pro": 3600, "enterprise": 0})
    )
    p = People()
    alice = _auth(mesh, p.alice, p.shared)
    style = mesh.images.add(None)
    first = await mesh.stub.CreateJob(
        jobs_pb2.CreateJobRequest(content_url=mesh.images.add(p.shared), style_urls=[style]),
        metadata=alice,
        timeout=10,
    )
    await _succeed(mesh, first.job_id, p.shared, alice, compute_ms=2500)
    query = select(compute_usage_table.c.owner_id, compute_usage_table.c.compute_ms).where(
        compute_usage_table.c.owner_id.in_([p.shared, p.alice]),
        compute_usage_table.c.month == month_of(utc_now()),
    )
    async with mesh.service.store.sessions() as session:
        assert [tuple(row) for row in await session.execute(query)] == [(p.shared, 2500)]
    # Bob, another member, finds the project's month used; in his own project he is not.
    await expect_error(
        mesh.stub.CreateJob(
            jobs_pb2.CreateJobRequest(content_url=mesh.images.add(p.shared), style_urls=[style]),
            metadata=_auth(mesh, p.bob, p.shared),
        ),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        contains=("compute-seconds",),
    )
    own = await mesh.stub.CreateJob(
        jobs_pb2.CreateJobRequest(content_url=mesh.images.add(p.bob), style_urls=[style]),
        metadata=_auth(mesh, p.bob),
        timeout=10,
    )
    assert own.status == "pending"


async def test_an_erased_creators_shared_jobs_stay_with_the_project(mesh: Mesh) -> None:
    p = People()
    style = mesh.images.add(None)
    shared = await mesh.stub.CreateJob(
        jobs_pb2.CreateJobRequest(content_url=mesh.images.add(p.shared), style_urls=[style]),
        metadata=_auth(mesh, p.alice, p.shared),
        timeout=10,
    )
    personal = await mesh.stub.CreateJob(
        jobs_pb2.CreateJobRequest(content_url=mesh.images.add(p.alice), style_urls=[style]),
        metadata=_auth(mesh, p.alice),
        timeout=10,
    )
    bobs = await mesh.stub.CreateJob(
        jobs_pb2.CreateJobRequest(content_url=mesh.images.add(p.shared), style_urls=[style]),
        metadata=_auth(mesh, p.bob, p.shared),
        timeout=10,
    )

    async def erased() -> bool:
        # Refused while an event naming her is still in the outbox, as the erasure is.
        try:
            await erase_own_rows(mesh.service.store, p.alice, utc_now())
        except EventsInFlight:
            return False
        return True

    await wait_until(erased, what="jobs' share of the erasure")
    assert await _creator(mesh, shared.job_id) == (p.shared, ERASED_CREATOR)
    assert await _creator(mesh, bobs.job_id) == (p.shared, p.bob)
    query = select(jobs_table.c.job_id).where(jobs_table.c.job_id == personal.job_id)
    async with mesh.service.store.sessions() as session:
        assert (await session.execute(query)).first() is None
