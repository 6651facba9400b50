"""Small upstreams for the edge tests: gRPC servicers from the real contracts, a file server."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
from aiohttp import web
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_reflection.v1alpha import reflection
from grpc_status import rpc_status

from gouache.contracts.feedback.v1 import feedback_pb2, feedback_pb2_grpc
from gouache.contracts.jobs.v1 import jobs_pb2, jobs_pb2_grpc

ABORT_PREFIX = "abort:"
JOBS_SERVICE = jobs_pb2.DESCRIPTOR.services_by_name["JobsService"].full_name
FEEDBACK_SERVICE = feedback_pb2.DESCRIPTOR.services_by_name["FeedbackService"].full_name
RICH_ERROR_URL = "rich-error"


@dataclass
class Call:
    """One request a servicer received, with its metadata."""

    method: str
    request: Message
    metadata: dict[str, str]


@dataclass
class Recorder:
    """What the upstreams received, newest last."""

    calls: list[Call] = field(default_factory=list)

    def record(self, method: str, request: Message, context: grpc.aio.ServicerContext) -> None:
        metadata = {key: str(value) for key, value in context.invocation_metadata() or ()}
        self.calls.append(Call(method, request, metadata))

    def last(self, method: str) -> Call:
        return next(call for call in reversed(self.calls) if call.method == method)


class JobsServicer(jobs_pb2_grpc.JobsServiceServicer):
    """Echoes jobs back; a content_url of "abort:<CODE>" fails the call with that status."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    async def CreateJob(
        self, request: jobs_pb2.CreateJobRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.CreateJobResponse:
        self.recorder.record("CreateJob", request, context)
        if request.content_url == RICH_ERROR_URL:
            await context.abort_with_status(rpc_status.to_status(_bad_request()))
        if request.content_url.startswith(ABORT_PREFIX):
            code = grpc.StatusCode[request.content_url.removeprefix(ABORT_PREFIX)]
            await context.abort(code, f"refused with {code.name}")
        return jobs_pb2.CreateJobResponse(
            job_id="job_1", status="pending", model_version=request.model_version
        )

    async def GetJob(
        self, request: jobs_pb2.GetJobRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.Job:
        self.recorder.record("GetJob", request, context)
        if request.job_id == "missing":
            await context.abort(grpc.StatusCode.NOT_FOUND, "job missing not found")
        return jobs_pb2.Job(job_id=request.job_id, status="pending")

    async def ListJobs(
        self, request: jobs_pb2.ListJobsRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.ListJobsResponse:
        self.recorder.record("ListJobs", request, context)
        return jobs_pb2.ListJobsResponse()

    async def WatchJob(
        self, request: jobs_pb2.WatchJobRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[jobs_pb2.WatchJobResponse]:
        self.recorder.record("WatchJob", request, context)
        for status in ("running", "succeeded"):
            yield jobs_pb2.WatchJobResponse(job=jobs_pb2.Job(job_id=request.job_id, status=status))


class FeedbackServicer(feedback_pb2_grpc.FeedbackServiceServicer):
    """Accepts every rating."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    async def SubmitFeedback(
        self, request: feedback_pb2.SubmitFeedbackRequest, context: grpc.aio.ServicerContext
    ) -> feedback_pb2.SubmitFeedbackResponse:
        self.recorder.record("SubmitFeedback", request, context)
        return feedback_pb2.SubmitFeedbackResponse(
            feedback_id="fb_1", job_id=request.job_id, rating=request.rating
        )


def _bad_request() -> status_pb2.Status:
    violation = error_details_pb2.BadRequest.FieldViolation(
        field="content_url", description="not a file URL"
    )
    status = status_pb2.Status(code=grpc.StatusCode.INVALID_ARGUMENT.value[0], message="bad input")
    status.details.add().Pack(error_details_pb2.BadRequest(field_violations=[violation]))
    return status


async def start_grpc(
    recorder: Recorder, credentials: grpc.ServerCredentials | None = None
) -> tuple[grpc.aio.Server, int]:
    """The jobs and feedback servicers, and reflection (v1alpha) of both, on 127.0.0.1, on a
    port the kernel picks; TLS with credentials."""
    server = grpc.aio.server()
    # The generated bases answer UNIMPLEMENTED for every RPC a fake leaves out.
    jobs = JobsServicer(recorder)  # type: ignore[abstract]
    feedback = FeedbackServicer(recorder)  # type: ignore[abstract]
    jobs_pb2_grpc.add_JobsServiceServicer_to_server(jobs, server)
    feedback_pb2_grpc.add_FeedbackServiceServicer_to_server(feedback, server)
    reflection.enable_server_reflection(
        (JOBS_SERVICE, FEEDBACK_SERVICE, reflection.SERVICE_NAME), server
    )
    address = "127.0.0.1:0"
    if credentials is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, credentials)
    await server.start()
    return server, port


@dataclass
class StoredFile:
    content_type: str
    data: bytes


class FileServer:
    """Stands in for storage's plain HTTP server: PUT stores bytes, GET returns them."""

    def __init__(self) -> None:
        self.files: dict[str, StoredFile] = {}
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        self.app.router.add_put("/v1/files/{name}", self.put)
        self.app.router.add_get("/v1/files/{name}", self.get)

    async def put(self, request: web.Request) -> web.Response:
        data = await request.read()
        self.files[request.match_info["name"]] = StoredFile(request.content_type, data)
        digest = hashlib.sha256(data).hexdigest()
        return web.json_response({"size": len(data), "sha256": digest})

    async def get(self, request: web.Request) -> web.Response:
        stored = self.files.get(request.match_info["name"])
        if stored is None:
            raise web.HTTPNotFound()
        return web.Response(body=stored.data, content_type=stored.content_type)


async def start_files(server: FileServer) -> tuple[web.AppRunner, int]:
    """The file server on 127.0.0.1, on a port the kernel picks."""
    runner = web.AppRunner(server.app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port: int = runner.addresses[0][1]
    return runner, port
