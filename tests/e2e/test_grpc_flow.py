"""The same flow for partner backends over gRPC: streamed upload, CreateJob, WatchJob, download."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import grpc
import pytest

from gouache.cli.mesh import Mesh
from gouache.contracts.auth.v1 import auth_pb2, auth_pb2_grpc
from gouache.contracts.common.v1 import common_pb2
from gouache.contracts.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from gouache.contracts.storage.v1 import storage_pb2, storage_pb2_grpc
from gouache.imaging.codec import validate_and_decode
from tests.e2e.images import small

pytestmark = pytest.mark.slow


async def _upload(
    stub: storage_pb2_grpc.StorageServiceStub, data: bytes, kind: str, auth: tuple[tuple[str, str]]
) -> str:
    async def parts() -> AsyncIterator[storage_pb2.UploadImageRequest]:
        yield storage_pb2.UploadImageRequest(
            header=storage_pb2.UploadImageHeader(
                filename=f"{kind}.png", content_type="image/png", kind=kind
            )
        )
        for start in range(0, len(data), 16 * 1024):
            yield storage_pb2.UploadImageRequest(chunk=data[start : start + 16 * 1024])

    response = await stub.UploadImage(parts(), metadata=auth, timeout=30)
    return response.image.file_url


async def test_grpc_upload_create_watch_download(mesh: Mesh) -> None:
    assert mesh.credentials is not None
    ports = mesh.config.ports.grpc
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{ports['auth']}") as auth_channel,
        grpc.aio.insecure_channel(f"127.0.0.1:{ports['storage']}") as storage_channel,
        grpc.aio.insecure_channel(f"127.0.0.1:{ports['jobs']}") as jobs_channel,
    ):
        token = await auth_pb2_grpc.AuthServiceStub(auth_channel).IssueToken(
            auth_pb2.IssueTokenRequest(
                grant_type="client_credentials", api_key=mesh.credentials.admin_api_key
            ),
            timeout=10,
        )
        auth = (("authorization", f"Bearer {token.access_token}"),)
        storage = storage_pb2_grpc.StorageServiceStub(storage_channel)
        content_url = await _upload(storage, small("rocket", 64), "content", auth)
        style_url = await _upload(storage, small("immunohistochemistry", 64), "style", auth)

        jobs = jobs_pb2_grpc.JobsServiceStub(jobs_channel)
        created = await jobs.CreateJob(
            jobs_pb2.CreateJobRequest(
                content_url=content_url,
                style_urls=[style_url],
                model_version="gatys-fast",
                params=common_pb2.StylizeParams(
                    alpha=0.9, seed=3, output_format="jpeg", quality=85
                ),
                idempotency_key=uuid.uuid4().hex,
            ),
            metadata=auth,
            timeout=10,
        )
        statuses = [
            update.job.status
            async for update in jobs.WatchJob(
                jobs_pb2.WatchJobRequest(job_id=created.job_id), metadata=auth, timeout=240
            )
        ]
        assert statuses[0] in ("pending", "running")
        assert statuses[-1] == "succeeded", statuses

        final = await jobs.GetJob(
            jobs_pb2.GetJobRequest(job_id=created.job_id), metadata=auth, timeout=10
        )
        chunks = [
            part
            async for part in storage.DownloadImage(
                storage_pb2.DownloadImageRequest(image_id=final.result_image_id),
                metadata=auth,
                timeout=30,
            )
        ]
        assert chunks[0].image.content_type == "image/jpeg"
        image = validate_and_decode(b"".join(part.chunk for part in chunks))
        assert (image.width, image.height) == (64, 64)


async def test_grpc_bad_input_gets_precise_codes(mesh: Mesh) -> None:
    assert mesh.credentials is not None
    ports = mesh.config.ports.grpc
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{ports['auth']}") as auth_channel,
        grpc.aio.insecure_channel(f"127.0.0.1:{ports['jobs']}") as jobs_channel,
    ):
        token = await auth_pb2_grpc.AuthServiceStub(auth_channel).IssueToken(
            auth_pb2.IssueTokenRequest(
                grant_type="client_credentials", api_key=mesh.credentials.admin_api_key
            ),
            timeout=10,
        )
        auth = (("authorization", f"Bearer {token.access_token}"),)
        jobs = jobs_pb2_grpc.JobsServiceStub(jobs_channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await jobs.CreateJob(
                jobs_pb2.CreateJobRequest(
                    content_url="http://x/v1/files/img_1",
                    style_urls=["a", "b", "c", "d", "e"],
                    params=common_pb2.StylizeParams(alpha=0.5),
                ),
                metadata=auth,
                timeout=10,
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.aio.AioRpcError) as unauthenticated:
            await jobs.ListJobs(jobs_pb2.ListJobsRequest(), timeout=10)
        assert unauthenticated.value.code() == grpc.StatusCode.UNAUTHENTICATED
