"""What CreateJob reads once and reuses: a style URL per owner and TTL (never across owners),
the routing table per replica (the database asked before a name is refused)."""

from __future__ import annotations

import grpc

from gouache.contracts.jobs.v1 import jobs_pb2
from gouache.db import utc_now
from services.jobs.domain.routing import ModelVersion
from tests.integration.jobs.conftest import Mesh
from tests.unit.jobs.helpers import expect_error


def _request(content_url: str, style_url: str) -> jobs_pb2.CreateJobRequest:
    return jobs_pb2.CreateJobRequest(
        content_url=content_url, style_urls=[style_url], model_version="adain"
    )


async def test_a_style_is_resolved_once_for_many_jobs(mesh: Mesh) -> None:
    style = mesh.images.add("usr_alice")
    contents = [mesh.images.add("usr_alice") for _ in range(3)]
    for content in contents:
        await mesh.stub.CreateJob(_request(content, style), metadata=mesh.auth(), timeout=10)
    asked = [url for url, _owner in mesh.images.resolved]
    assert asked.count(style) == 1
    assert all(asked.count(content) == 1 for content in contents)


async def test_another_owner_is_still_checked(mesh: Mesh) -> None:
    style = mesh.images.add("usr_alice")
    await mesh.stub.CreateJob(
        _request(mesh.images.add("usr_alice"), style), metadata=mesh.auth(), timeout=10
    )
    await expect_error(
        mesh.stub.CreateJob(
            _request(mesh.images.add("usr_bob"), style),
            metadata=mesh.auth("usr_bob"),
            timeout=10,
        ),
        grpc.StatusCode.NOT_FOUND,
        field="style_urls[0]",
    )
    # A curated style is resolved for each owner that names it.
    curated = mesh.images.add(None)
    for user in ("usr_alice", "usr_bob"):
        await mesh.stub.CreateJob(
            _request(mesh.images.add(user), curated), metadata=mesh.auth(user), timeout=10
        )
    assert sorted(o for url, o in mesh.images.resolved if url == curated) == [
        "usr_alice",
        "usr_bob",
    ]


async def test_a_refusal_is_not_remembered(mesh: Mesh) -> None:
    style = mesh.images.add("usr_alice", pending=True)
    await expect_error(
        mesh.stub.CreateJob(
            _request(mesh.images.add("usr_alice"), style), metadata=mesh.auth(), timeout=10
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        field="style_urls[0]",
    )
    mesh.images.pending.discard(style)
    await mesh.stub.CreateJob(
        _request(mesh.images.add("usr_alice"), style), metadata=mesh.auth(), timeout=10
    )


async def test_a_version_registered_through_another_replica_is_found(mesh: Mesh) -> None:
    """CreateJob routes from the replica's copy of the table; a name the copy lacks is
    looked up in the database before it is refused."""
    await mesh.stub.CreateJob(
        _request(mesh.images.add("usr_alice"), mesh.images.add("usr_alice")),
        metadata=mesh.auth(),
        timeout=10,
    )  # the copy is loaded now
    version = ModelVersion(
        name="adain.other-replica", family="adain", encoder="lite0", tile_size=512
    )
    async with mesh.service.store.transaction() as uow:  # another replica's write
        await uow.insert_version(version, utc_now())
    request = _request(mesh.images.add("usr_alice"), mesh.images.add("usr_alice"))
    request.model_version = version.name
    created = await mesh.stub.CreateJob(request, metadata=mesh.auth(), timeout=10)
    job = await mesh.get(created.job_id)
    assert job.model_version == version.name
    request.model_version = "adain.nowhere"
    await expect_error(
        mesh.stub.CreateJob(request, metadata=mesh.auth(), timeout=10),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="model_version",
    )
