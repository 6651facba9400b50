"""GouacheGrpc against in-process gRPC servers: token exchange, renewal, every call kind."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field

import grpc
import pytest

from gouache.client import GouacheGrpc
from gouache.contracts.auth.v1 import auth_pb2, auth_pb2_grpc
from gouache.contracts.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from gouache.contracts.storage.v1 import storage_pb2, storage_pb2_grpc

API_KEY = "gk_test"
LIFETIME_S = 300


@dataclass
class Seen:
    """Tokens issued, and the authorization header of every other call."""

    issued: list[str] = field(default_factory=list)
    authorization: list[str] = field(default_factory=list)

    def record(self, context: grpc.ServicerContext) -> None:
        metadata = dict(context.invocation_metadata())
        self.authorization.append(str(metadata.get("authorization", "")))


class _Auth(auth_pb2_grpc.AuthServiceServicer):
    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    def IssueToken(
        self, request: auth_pb2.IssueTokenRequest, context: grpc.ServicerContext
    ) -> auth_pb2.IssueTokenResponse:
        if request.api_key != API_KEY:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "unknown API key")
        token = f"token-{len(self.seen.issued) + 1}"
        self.seen.issued.append(token)
        return auth_pb2.IssueTokenResponse(
            access_token=token, token_type="Bearer", expires_in=LIFETIME_S
        )


class _Jobs(jobs_pb2_grpc.JobsServiceServicer):
    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    def ListModels(
        self, request: jobs_pb2.ListModelsRequest, context: grpc.ServicerContext
    ) -> jobs_pb2.ListModelsResponse:
        self.seen.record(context)
        return jobs_pb2.ListModelsResponse()

    def WatchJob(
        self, request: jobs_pb2.WatchJobRequest, context: grpc.ServicerContext
    ) -> Iterator[jobs_pb2.WatchJobResponse]:
        self.seen.record(context)
        for status in ("running", "succeeded"):
            yield jobs_pb2.WatchJobResponse(job=jobs_pb2.Job(job_id=request.job_id, status=status))


class _Storage(storage_pb2_grpc.StorageServiceServicer):
    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    def UploadImage(
        self,
        request_iterator: Iterator[storage_pb2.UploadImageRequest],
        context: grpc.ServicerContext,
    ) -> storage_pb2.UploadImageResponse:
        self.seen.record(context)
        parts = list(request_iterator)
        data = b"".join(part.chunk for part in parts[1:])
        return storage_pb2.UploadImageResponse(
            image=storage_pb2.Image(
                kind=parts[0].header.kind,
                size_bytes=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
            )
        )


@pytest.fixture
def upstream() -> Iterator[tuple[str, Seen]]:
    seen = Seen()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    auth_pb2_grpc.add_AuthServiceServicer_to_server(_Auth(seen), server)
    jobs_pb2_grpc.add_JobsServiceServicer_to_server(_Jobs(seen), server)  # type: ignore[abstract]
    storage_pb2_grpc.add_StorageServiceServicer_to_server(_Storage(seen), server)  # type: ignore[abstract]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", seen
    server.stop(0)


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_every_call_kind_carries_the_token_of_the_api_key(upstream: tuple[str, Seen]) -> None:
    target, seen = upstream
    data = bytes(range(256)) * 5000

    with GouacheGrpc(target, API_KEY, timeout_s=5) as client:
        client.jobs.ListModels(jobs_pb2.ListModelsRequest(), timeout=5)
        statuses = [
            u.job.status for u in client.jobs.WatchJob(jobs_pb2.WatchJobRequest(job_id="j"))
        ]
        image = client.upload_image(data, filename="a.png", content_type="image/png", kind="style")

    assert statuses == ["running", "succeeded"]
    assert (image.kind, image.size_bytes) == ("style", len(data))
    assert image.sha256 == hashlib.sha256(data).hexdigest()
    assert seen.issued == ["token-1"]
    assert seen.authorization == ["Bearer token-1"] * 3


def test_the_token_is_renewed_before_it_expires(upstream: tuple[str, Seen]) -> None:
    target, seen = upstream
    clock = _Clock()

    with GouacheGrpc(target, API_KEY, refresh_margin_s=60, clock=clock) as client:
        client.jobs.ListModels(jobs_pb2.ListModelsRequest(), timeout=5)
        clock.now += LIFETIME_S - 61
        client.jobs.ListModels(jobs_pb2.ListModelsRequest(), timeout=5)
        clock.now += 1
        client.jobs.ListModels(jobs_pb2.ListModelsRequest(), timeout=5)

    assert seen.issued == ["token-1", "token-2"]
    assert seen.authorization == ["Bearer token-1", "Bearer token-1", "Bearer token-2"]


def test_an_explicit_authorization_header_is_left_alone(upstream: tuple[str, Seen]) -> None:
    target, seen = upstream

    with GouacheGrpc(target, API_KEY) as client:
        client.jobs.ListModels(
            jobs_pb2.ListModelsRequest(), metadata=(("authorization", "Bearer mine"),), timeout=5
        )

    assert seen.issued == []
    assert seen.authorization == ["Bearer mine"]


def test_a_wrong_api_key_fails_the_call_with_unauthenticated(upstream: tuple[str, Seen]) -> None:
    target, _ = upstream

    with GouacheGrpc(target, "gk_wrong") as client, pytest.raises(grpc.RpcError) as caught:
        client.jobs.ListModels(jobs_pb2.ListModelsRequest(), timeout=5)

    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
