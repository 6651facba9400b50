"""DeleteJob over gRPC, with real JetStream and a real database (SQLite and PostgreSQL): the
job, its result image (unless a cached job still shares it), its deliveries and its cache
entries go; and GetJob of a job whose result expired says so."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
from sqlalchemy import func, select

from gouache.contracts.jobs.v1 import jobs_pb2
from services.jobs.store import deliveries_table, jobs_table, result_cache_table
from tests.integration.jobs.conftest import Mesh
from tests.integration.jobs.test_result_cache import Inputs, _create, _digests, _get, _run
from tests.unit.jobs.helpers import expect_error


async def _delete(mesh: Mesh, job_id: str, user: str = "usr_alice") -> jobs_pb2.DeleteJobResponse:
    reply: jobs_pb2.DeleteJobResponse = await mesh.stub.DeleteJob(
        jobs_pb2.DeleteJobRequest(job_id=job_id), metadata=mesh.auth(user), timeout=10
    )
    return reply


async def _count(mesh: Mesh, table: object, column: object, value: str) -> int:
    async with mesh.service.store.sessions() as session:
        query = select(func.count()).select_from(table).where(column == value)  # type: ignore[arg-type]
        return int((await session.execute(query)).scalar_one())


async def test_a_job_goes_with_its_result_and_cache_entry(mesh: Mesh) -> None:
    inputs = Inputs(mesh, "usr_alice", *_digests())
    first = await _create(mesh, inputs.request())
    result = await _run(mesh, first.job_id)
    hit = await _create(mesh, inputs.request())
    assert hit.cached  # shares the first job's result image

    # Another user cannot, and cannot tell the job exists.
    await expect_error(
        mesh.stub.DeleteJob(
            jobs_pb2.DeleteJobRequest(job_id=first.job_id), metadata=mesh.auth("usr_bob")
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    assert (await _delete(mesh, first.job_id)).job_id == first.job_id
    # The cached job still names the image: it stays; the cache entry went with its source.
    assert mesh.images.deleted == []
    assert await _count(mesh, result_cache_table, result_cache_table.c.result_image_id, result) == 0
    assert await _count(mesh, jobs_table, jobs_table.c.job_id, first.job_id) == 0
    assert (await _get(mesh, hit.job_id)).result_url

    await _delete(mesh, hit.job_id)
    assert mesh.images.deleted == [result]
    assert await _count(mesh, jobs_table, jobs_table.c.result_image_id, result) == 0
    assert await _count(mesh, deliveries_table, deliveries_table.c.job_id, hit.job_id) == 0
    await expect_error(
        mesh.stub.GetJob(jobs_pb2.GetJobRequest(job_id=hit.job_id), metadata=mesh.auth()),
        grpc.StatusCode.NOT_FOUND,
    )
    await expect_error(
        mesh.stub.DeleteJob(jobs_pb2.DeleteJobRequest(job_id=hit.job_id), metadata=mesh.auth()),
        grpc.StatusCode.NOT_FOUND,
    )


async def test_an_unfinished_job_must_be_canceled_first(mesh: Mesh) -> None:
    pending = await _create(mesh, Inputs(mesh, "usr_alice", *_digests()).request())
    error = await expect_error(
        mesh.stub.DeleteJob(jobs_pb2.DeleteJobRequest(job_id=pending.job_id), metadata=mesh.auth()),
        grpc.StatusCode.FAILED_PRECONDITION,
        contains=["cancel it first", f"/v1/jobs/{pending.job_id}:cancel"],
    )
    assert error
    await mesh.stub.CancelJob(
        jobs_pb2.CancelJobRequest(job_id=pending.job_id), metadata=mesh.auth()
    )
    await _delete(mesh, pending.job_id)
    assert mesh.images.deleted == []


async def test_an_admin_deletes_anyones_job_and_a_bad_id_is_refused(mesh: Mesh) -> None:
    job = await _create(mesh, Inputs(mesh, "usr_alice", *_digests()).request())
    result = await _run(mesh, job.job_id)
    admin = (("authorization", f"Bearer {mesh.signer.token('usr_root', role='admin')}"),)
    await mesh.stub.DeleteJob(jobs_pb2.DeleteJobRequest(job_id=job.job_id), metadata=admin)
    assert mesh.images.deleted == [result]
    await expect_error(
        mesh.stub.DeleteJob(jobs_pb2.DeleteJobRequest(job_id="not-a-job"), metadata=mesh.auth()),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="job_id",
    )


async def test_get_job_says_when_the_result_expired(mesh: Mesh) -> None:
    job = await _create(mesh, Inputs(mesh, "usr_alice", *_digests()).request())
    result = await _run(mesh, job.job_id)
    mesh.images.expire(result, datetime(2026, 1, 31, tzinfo=UTC))
    seen = await _get(mesh, job.job_id)
    assert seen.status == "succeeded"
    assert not seen.HasField("result_url")
    assert seen.result_gone == "expired"
    assert seen.result_expires_at.ToDatetime(UTC) == datetime(2026, 1, 31, tzinfo=UTC)
    listed = await mesh.stub.ListJobs(jobs_pb2.ListJobsRequest(), metadata=mesh.auth())
    assert [j.result_gone for j in listed.jobs if j.job_id == job.job_id] == ["expired"]
    # Deleting it still works: the result is gone already.
    await _delete(mesh, job.job_id)
