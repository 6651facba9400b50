"""StorageClient over real gRPC, against an in-process StorageService with storage's rules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from gouache.contracts.storage.v1 import storage_pb2, storage_pb2_grpc
from gouache.runtime.auth import TokenVerifier
from gouache.runtime.clients import CallOptions
from gouache.runtime.context import Principal, current_principal
from gouache.runtime.errors import FailedPrecondition, NotFound, Unavailable
from gouache.runtime.server import RunningService, ServiceSpec, start_service
from gouache.runtime.settings import ServiceSettings
from services.jobs.app import JobsApp
from services.jobs.clients import ResolvedImage, StorageClient
from services.jobs.domain.requests import JobRequest
from tests.helpers.tokens import TestSigner
from tests.unit.jobs.conftest import make_app
from tests.unit.jobs.helpers import InMemoryImages

STORAGE = "gouache.storage.v1.StorageService"
FILES = "http://127.0.0.1:8080/v1/files"


@dataclass
class _Storage(storage_pb2_grpc.StorageServiceServicer):
    """ResolveImageUrl and SignDownload as storage answers them, over a dict of images."""

    owners: dict[str, str] = field(default_factory=dict)
    pending: set[str] = field(default_factory=set)
    calls: list[tuple[str, str, str]] = field(default_factory=list)

    async def ResolveImageUrl(
        self, request: storage_pb2.ResolveImageUrlRequest, context: Any
    ) -> storage_pb2.ResolveImageUrlResponse:
        principal = current_principal()
        self.calls.append((principal.role, request.url, request.owner_id))
        image_id = request.url.rsplit("/", 1)[-1]
        if self.owners.get(image_id) != request.owner_id:
            raise NotFound(f"image {image_id} not found")
        if image_id in self.pending:
            raise FailedPrecondition(f"upload {image_id} has not finished: PUT it first")
        return storage_pb2.ResolveImageUrlResponse(
            image=storage_pb2.Image(
                image_id=image_id, owner_id=request.owner_id, sha256=f"sha256-of-{image_id}"
            )
        )

    async def SignDownload(
        self, request: storage_pb2.SignDownloadRequest, context: Any
    ) -> storage_pb2.SignDownloadResponse:
        return storage_pb2.SignDownloadResponse(
            url=f"{FILES}/{request.image_id}?ttl={request.ttl_seconds}&sig=s"
        )


class _ServiceTokens:
    """A service token source for the jobs service, minted by the test signer."""

    def __init__(self, signer: TestSigner) -> None:
        self._signer = signer

    async def token(self) -> str:
        return self._signer.token("usr_jobs", role="service", scopes=("internal",))


@dataclass
class _Setup:
    storage: _Storage
    running: RunningService
    client: StorageClient
    channel: grpc.aio.Channel
    signer: TestSigner


@pytest.fixture
async def storage() -> AsyncIterator[_Setup]:
    signer = TestSigner()
    # Only the two RPCs jobs calls are implemented; the others answer UNIMPLEMENTED.
    servicer = _Storage(  # type: ignore[abstract]
        owners={"img_a": "usr_alice", "img_p": "usr_alice"}, pending={"img_p"}
    )
    spec = ServiceSpec(
        name="storage",
        service_names=[STORAGE],
        register=lambda server: storage_pb2_grpc.add_StorageServiceServicer_to_server(
            servicer, server
        ),
        policy={f"/{STORAGE}/ResolveImageUrl": "internal", f"/{STORAGE}/SignDownload": "internal"},
    )
    running = await start_service(ServiceSettings(port=0), spec, TokenVerifier(signer.fetch))
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    calls = CallOptions(_ServiceTokens(signer), timeout_s=5)  # type: ignore[arg-type]
    try:
        yield _Setup(servicer, running, StorageClient(channel, calls), channel, signer)
    finally:
        await channel.close()
        await running.stop(0)


async def test_resolve_calls_as_the_service_for_the_owner(storage: _Setup) -> None:
    resolved = await storage.client.resolve_image(f"{FILES}/img_a", "usr_alice")
    assert resolved == ResolvedImage(image_id="img_a", sha256="sha256-of-img_a")
    assert storage.storage.calls == [("service", f"{FILES}/img_a", "usr_alice")]


async def test_storage_answers_about_the_input_pass_through(storage: _Setup) -> None:
    with pytest.raises(NotFound, match="image img_a not found"):
        await storage.client.resolve_image(f"{FILES}/img_a", "usr_bob")
    with pytest.raises(FailedPrecondition, match="has not finished"):
        await storage.client.resolve_image(f"{FILES}/img_p", "usr_alice")


async def test_sign_download(storage: _Setup) -> None:
    assert await storage.client.sign_download("img_r", 600) == f"{FILES}/img_r?ttl=600&sig=s"


async def test_refusal_is_a_configuration_problem(storage: _Setup) -> None:
    unsigned = StorageClient(storage.channel, CallOptions(None, timeout_s=5))
    with pytest.raises(Unavailable, match="API key"):
        await unsigned.resolve_image(f"{FILES}/img_a", "usr_alice")


async def test_storage_down_is_unavailable() -> None:
    channel = grpc.aio.insecure_channel("127.0.0.1:1")
    try:
        client = StorageClient(channel, CallOptions(None, timeout_s=2))
        with pytest.raises(Unavailable, match="retry shortly"):
            await client.resolve_image(f"{FILES}/img_a", "usr_alice")
    finally:
        await channel.close()


async def test_create_job_names_the_field_storage_refused(storage: _Setup, tmp_path: Path) -> None:
    seeded = await make_app(f"sqlite+aiosqlite:///{tmp_path / 'j.db'}", InMemoryImages())
    app = JobsApp(seeded.store, storage.client, storage.client)
    principal = Principal(user_id="usr_alice", role="user")
    request = JobRequest(
        content_url=f"{FILES}/img_a", style_urls=(f"{FILES}/img_a", f"{FILES}/img_p")
    )
    with pytest.raises(FailedPrecondition) as caught:
        await app.create_job(principal, request)
    assert caught.value.field == "style_urls[1]"
    assert caught.value.message.startswith("style_urls[1]: upload img_p")
    job, created = await app.create_job(
        principal, JobRequest(content_url=f"{FILES}/img_a", style_urls=(f"{FILES}/img_a",))
    )
    assert created
    assert (job.content_image_id, job.style_image_ids) == ("img_a", ("img_a",))
    await seeded.store.close()
