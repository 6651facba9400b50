"""GouacheGrpcClient and AsyncGouacheGrpcClient against an in-process gRPC server on
127.0.0.1 that fails on cue: retries on UNAVAILABLE and RESOURCE_EXHAUSTED, typed errors
with their ErrorInfo reason, and wait() over WatchJob across a broken stream."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from gouache.client import (
    AsyncGouacheGrpcClient,
    GouacheGrpcClient,
    Job,
    NotFoundError,
    RateLimitedError,
    RetryPolicy,
    UnavailableError,
)
from gouache.contracts.auth.v1 import auth_pb2, auth_pb2_grpc
from gouache.contracts.jobs.v1 import jobs_pb2, jobs_pb2_grpc

FAST = RetryPolicy(max_retries=3, initial_backoff_s=0.05, max_backoff_s=1.0, random=lambda: 1.0)


@dataclass
class Script:
    """Failures to answer with, per method, in order; then success."""

    failures: dict[str, list[tuple[grpc.StatusCode, str, tuple[tuple[str, str], ...]]]] = field(
        default_factory=dict
    )
    calls: dict[str, list[float]] = field(default_factory=dict)
    requests: list[jobs_pb2.CreateJobRequest] = field(default_factory=list)
    # WatchJob: how many times it was opened.
    watches: int = 0

    def enter(self, method: str, context: grpc.ServicerContext) -> None:
        self.calls.setdefault(method, []).append(time.monotonic())
        pending = self.failures.get(method) or []
        if pending:
            code, message, trailing = pending.pop(0)
            context.set_trailing_metadata(trailing)
            context.abort(code, message)


def _job(status: str, progress: float) -> jobs_pb2.Job:
    return jobs_pb2.Job(job_id="job_1", status=status, progress=progress, model_version="v1")


class _Auth(auth_pb2_grpc.AuthServiceServicer):
    def IssueToken(
        self, request: auth_pb2.IssueTokenRequest, context: grpc.ServicerContext
    ) -> auth_pb2.IssueTokenResponse:
        return auth_pb2.IssueTokenResponse(access_token="tok", expires_in=3600)


class _Jobs(jobs_pb2_grpc.JobsServiceServicer):
    def __init__(self, script: Script) -> None:
        self.script = script

    def GetJob(
        self, request: jobs_pb2.GetJobRequest, context: grpc.ServicerContext
    ) -> jobs_pb2.Job:
        if request.job_id == "job_missing":
            info = error_details_pb2.ErrorInfo(reason="job_not_found", domain="gouache")
            detail = any_pb2.Any()
            detail.Pack(info)
            status = status_pb2.Status(
                code=code_pb2.NOT_FOUND, message="no job job_missing", details=[detail]
            )
            context.abort_with_status(rpc_status.to_status(status))
        self.script.enter("GetJob", context)
        return _job("running", 0.5)

    def CreateJob(
        self, request: jobs_pb2.CreateJobRequest, context: grpc.ServicerContext
    ) -> jobs_pb2.CreateJobResponse:
        self.script.requests.append(request)
        self.script.enter("CreateJob", context)
        return jobs_pb2.CreateJobResponse(job_id="job_1", status="pending")

    def WatchJob(
        self, request: jobs_pb2.WatchJobRequest, context: grpc.ServicerContext
    ) -> Iterator[jobs_pb2.WatchJobResponse]:
        self.script.watches += 1
        if self.script.watches == 1:
            yield jobs_pb2.WatchJobResponse(job=_job("pending", 0.0))
            yield jobs_pb2.WatchJobResponse(job=_job("running", 0.4))
            context.abort(grpc.StatusCode.UNAVAILABLE, "jobs replica stopping")
        yield jobs_pb2.WatchJobResponse(job=_job("running", 0.8))
        yield jobs_pb2.WatchJobResponse(job=_job("succeeded", 1.0))


@pytest.fixture
def served() -> Iterator[tuple[str, Script]]:
    script = Script()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    auth_pb2_grpc.add_AuthServiceServicer_to_server(_Auth(), server)
    jobs_pb2_grpc.add_JobsServiceServicer_to_server(_Jobs(script), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", script
    finally:
        server.stop(0).wait(5)


def test_unavailable_then_rate_limited_reads_are_retried(served: tuple[str, Script]) -> None:
    target, script = served
    script.failures["GetJob"] = [
        (grpc.StatusCode.UNAVAILABLE, "restarting", ()),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "rate limit", (("retry-after", "1"),)),
    ]
    with GouacheGrpcClient(target, "gk_x", retry=FAST) as client:
        job = client.get_job("job_1")
    assert (job.status, job.progress) == ("running", 0.5)
    first, second, third = script.calls["GetJob"]
    assert second - first >= 0.05
    assert third - second >= 1.0


def test_creates_are_retried_only_with_an_idempotency_key(served: tuple[str, Script]) -> None:
    target, script = served
    unavailable = (grpc.StatusCode.UNAVAILABLE, "restarting", ())
    script.failures["CreateJob"] = [unavailable]
    with GouacheGrpcClient(target, "gk_x", retry=FAST) as client:
        created = client.create_job("c", ["s1", "s2"], weights=[0.5, 0.5], max_side=256)
        assert created.job_id == "job_1"
        first, second = script.requests
        assert first == second
        assert first.idempotency_key.startswith("sdk-")
        assert list(first.params.weights) == [0.5, 0.5]
        assert first.params.max_side == 256
        script.failures["CreateJob"] = [unavailable]
        with pytest.raises(UnavailableError) as caught:
            client.create_job("c", ["s"], idempotency_key="")
    assert len(script.requests) == 3
    assert (caught.value.status, caught.value.code) == (503, 14)


def test_errors_carry_code_status_and_reason(served: tuple[str, Script]) -> None:
    target, script = served
    script.failures["GetJob"] = [(grpc.StatusCode.RESOURCE_EXHAUSTED, "locked out", ())]
    with GouacheGrpcClient(target, "gk_x", retry=FAST) as client:
        with pytest.raises(RateLimitedError):
            client.get_job("job_1")
        assert len(script.calls["GetJob"]) == 1
        with pytest.raises(NotFoundError) as missing:
            client.get_job("job_missing")
    assert (missing.value.status, missing.value.code) == (404, 5)
    assert missing.value.reason == "job_not_found"
    assert missing.value.message == "no job job_missing"


def test_wait_watches_again_after_a_broken_stream(served: tuple[str, Script]) -> None:
    target, script = served
    seen: list[Job] = []
    with GouacheGrpcClient(target, "gk_x", retry=FAST) as client:
        result = client.wait("job_1", timeout_s=10, progress=seen.append)
    assert result.status == "succeeded"
    assert [(job.status, job.progress) for job in seen] == [
        ("pending", 0.0),
        ("running", pytest.approx(0.4)),
        ("running", pytest.approx(0.8)),
        ("succeeded", 1.0),
    ]
    assert script.watches == 2


async def test_the_async_client_retries_and_watches(served: tuple[str, Script]) -> None:
    target, script = served
    script.failures["GetJob"] = [(grpc.StatusCode.UNAVAILABLE, "restarting", ())]
    seen: list[Job] = []
    async with AsyncGouacheGrpcClient(target, "gk_x", retry=FAST) as client:
        assert (await client.get_job("job_1")).status == "running"
        result = await client.wait("job_1", timeout_s=10, progress=seen.append)
        with pytest.raises(NotFoundError):
            await client.get_job("job_missing")
    assert result.status == "succeeded"
    assert len(seen) == 4
    assert len(script.calls["GetJob"]) == 2
