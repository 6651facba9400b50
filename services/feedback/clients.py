"""Adapters to other services: the jobs call feedback makes, behind domain.JobLookup."""

from __future__ import annotations

import grpc

from gouache.contracts.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from gouache.runtime.clients import CallOptions
from gouache.runtime.errors import Unavailable

# Jobs' answers that mean "no such job for this caller": unknown, malformed, another
# project's (NOT_FOUND), or a token that may not read jobs.
_NO_JOB = (
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.PERMISSION_DENIED,
)


class JobsClient:
    """JobLookup over gRPC: GetJob with the caller's own token, so jobs enforces its project."""

    def __init__(self, channel: grpc.aio.Channel, calls: CallOptions) -> None:
        self._stub = jobs_pb2_grpc.JobsServiceStub(channel)
        self._calls = calls

    async def job_status(self, job_id: str) -> str | None:
        try:
            job = await self._stub.GetJob(
                jobs_pb2.GetJobRequest(job_id=job_id), **await self._calls(as_caller=True)
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _NO_JOB:
                return None
            raise Unavailable(
                f"could not ask the jobs service about job {job_id} "
                f"({exc.code().name}: {exc.details()}); retry in a few seconds",
                retry_after_s=2.0,
            ) from exc
        status: str = job.status
        return status
