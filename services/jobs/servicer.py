"""The JobsService gRPC servicer: converts messages and delegates to JobsApp."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from gouache.contracts.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from gouache.runtime.audit import AuditReporter, pseudonym
from gouache.runtime.context import current_principal
from gouache.runtime.errors import Unavailable
from services.jobs.app import JobsApp
from services.jobs.batches import BatchView
from services.jobs.convert import (
    batch_request_from_pb,
    batch_to_pb,
    job_request_from_pb,
    job_to_pb,
    route_to_pb,
    targets_from_pb,
    timestamp,
    version_from_pb,
    version_to_pb,
    webhook_to_pb,
)
from services.jobs.domain.routing import RoutingTable
from services.jobs.erasure import UserErasures
from services.jobs.reads_app import DEFAULT_WAIT_S

IDEMPOTENCY_HEADER = "idempotency-key"


def _header(context: grpc.aio.ServicerContext[Any, Any], name: str) -> str | None:
    """A request header (Envoy forwards HTTP headers as gRPC metadata)."""
    for key, value in context.invocation_metadata() or ():
        if key.lower() == name:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


def _batch_pb(view: BatchView) -> jobs_pb2.Batch:
    items = [(item.job, item.result_url) for item in view.items]
    return batch_to_pb(view.batch, view.counts, items, view.next_page_token)


class JobsServicer(jobs_pb2_grpc.JobsServiceServicer):
    """One method per RPC; rules and errors live in JobsApp and the domain."""

    def __init__(
        self,
        app: JobsApp,
        erasures: UserErasures | None = None,
        audit: AuditReporter | None = None,
    ) -> None:
        self._app = app
        self._erasures = erasures
        self._audit = audit
        # ListModels' answer, converted once per routing table the app hands out.
        self._models: tuple[RoutingTable, jobs_pb2.ListModelsResponse] | None = None

    async def CreateJob(
        self, request: jobs_pb2.CreateJobRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> jobs_pb2.CreateJobResponse:
        job, _ = await self._app.create_job(
            current_principal(),
            job_request_from_pb(request),
            header_key=_header(context, IDEMPOTENCY_HEADER),
        )
        return jobs_pb2.CreateJobResponse(
            job_id=job.job_id,
            status=job.status.value,
            eta_seconds=job.eta_seconds,
            model_version=job.model_version,
            cached=job.cached,
        )

    async def GetJob(
        self, request: jobs_pb2.GetJobRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> jobs_pb2.Job:
        view = await self._app.get_job(current_principal(), request.job_id)
        return job_to_pb(view.job, view.result_url, expired=view.result_expired)

    async def ListJobs(
        self, request: jobs_pb2.ListJobsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> jobs_pb2.ListJobsResponse:
        views, next_token = await self._app.list_jobs(
            current_principal(),
            size=request.page_size,
            page_token=request.page_token,
            status=request.status,
        )
        return jobs_pb2.ListJobsResponse(
            jobs=[
                job_to_pb(view.job, view.result_url, expired=view.result_expired) for view in views
            ],
            next_page_token=next_token,
        )

    async def CancelJob(
        self, request: jobs_pb2.CancelJobRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> jobs_pb2.Job:
        view = await self._app.cancel_job(current_principal(), request.job_id)
        return job_to_pb(view.job, view.result_url, expired=view.result_expired)

    async def WatchJob(
        self, request: jobs_pb2.WatchJobRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[jobs_pb2.WatchJobResponse]:
        async for view in self._app.watch_job(current_principal(), request.job_id):
            yield jobs_pb2.WatchJobResponse(
                job=job_to_pb(view.job, view.result_url, expired=view.result_expired)
            )

    async def WaitJob(
        self, request: jobs_pb2.WaitJobRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> jobs_pb2.Job:
        timeout_s = DEFAULT_WAIT_S
        if request.HasField("timeout"):
            timeout_s = request.timeout.ToTimedelta().total_seconds() or DEFAULT_WAIT_S
        view = await self._app.wait_job(current_principal(), request.job_id, timeout_s)
        return job_to_pb(view.job, view.result_url, expired=view.result_expired)

    async def CreateBatch(
        self, request: jobs_pb2.CreateBatchRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> jobs_pb2.Batch:
        view = await self._app.batches.create_batch(
            current_principal(),
            batch_request_from_pb(request),
            header_key=_header(context, IDEMPOTENCY_HEADER),
        )
        return _batch_pb(view)

    async def GetBatch(
        self, request: jobs_pb2.GetBatchRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> jobs_pb2.Batch:
        view = await self._app.batches.get_batch(
            current_principal(),
            request.batch_id,
            size=request.page_size,
            page_token=request.page_token,
        )
        return _batch_pb(view)

    async def ListBatches(
        self, request: jobs_pb2.ListBatchesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> jobs_pb2.ListBatchesResponse:
        views, next_token = await self._app.batches.list_batches(
            current_principal(), size=request.page_size, page_token=request.page_token
        )
        return jobs_pb2.ListBatchesResponse(
            batches=[_batch_pb(view) for view in views], next_page_token=next_token
        )

    async def CancelBatch(
        self, request: jobs_pb2.CancelBatchRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> jobs_pb2.Batch:
        view = await self._app.batches.cancel_batch(current_principal(), request.batch_id)
        return _batch_pb(view)

    async def CreateWebhook(
        self, request: jobs_pb2.CreateWebhookRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> jobs_pb2.CreateWebhookResponse:
        webhook = await self._app.create_webhook(
            current_principal(), request.url, request.secret, list(request.events)
        )
        return jobs_pb2.CreateWebhookResponse(webhook=webhook_to_pb(webhook))

    async def ListWebhooks(
        self, request: jobs_pb2.ListWebhooksRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> jobs_pb2.ListWebhooksResponse:
        webhooks = await self._app.list_webhooks(current_principal())
        return jobs_pb2.ListWebhooksResponse(webhooks=[webhook_to_pb(w) for w in webhooks])

    async def DeleteJob(
        self, request: jobs_pb2.DeleteJobRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> jobs_pb2.DeleteJobResponse:
        principal = current_principal()
        job = await self._app.delete_job(principal, request.job_id)
        if self._audit is not None:
            await self._audit.report(
                principal, "job.deleted", target=f"job:{job.job_id}", subject_id=job.owner_id
            )
        return jobs_pb2.DeleteJobResponse(job_id=job.job_id)

    async def EraseUser(
        self, request: jobs_pb2.EraseUserRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> jobs_pb2.EraseUserResponse:
        if self._erasures is None:
            raise Unavailable("user erasure is not configured on this jobs server")
        principal = current_principal()
        erasure = await self._erasures.request(principal, request.user_id)
        if self._audit is not None:
            # Named by pseudonym from the start: the erasure may finish before this lands.
            alias = pseudonym(request.user_id.strip())
            await self._audit.report(
                principal, "user.erasure_requested", target=f"user:{alias}", subject_id=alias
            )
        reply = jobs_pb2.EraseUserResponse(
            user_id=request.user_id.strip(),
            status=erasure.status,
            requested_at=timestamp(erasure.requested_at),
            last_error=erasure.last_error or "",
        )
        if erasure.finished_at is not None:
            reply.finished_at.CopyFrom(timestamp(erasure.finished_at))
        return reply

    async def DeleteWebhook(
        self, request: jobs_pb2.DeleteWebhookRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> jobs_pb2.DeleteWebhookResponse:
        await self._app.delete_webhook(current_principal(), request.webhook_id)
        return jobs_pb2.DeleteWebhookResponse()

    async def ListModels(
        self, request: jobs_pb2.ListModelsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> jobs_pb2.ListModelsResponse:
        table = await self._app.list_models()
        if self._models is None or self._models[0] is not table:
            self._models = (
                table,
                jobs_pb2.ListModelsResponse(
                    versions=[version_to_pb(v) for v in table.versions.values()],
                    routes=[route_to_pb(table.routes[alias]) for alias in sorted(table.routes)],
                ),
            )
        return self._models[1]

    async def RegisterModelVersion(
        self,
        request: jobs_pb2.RegisterModelVersionRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> jobs_pb2.RegisterModelVersionResponse:
        version = await self._app.register_version(
            current_principal(), version_from_pb(request.version)
        )
        return jobs_pb2.RegisterModelVersionResponse(version=version_to_pb(version))

    async def SetModelRoute(
        self, request: jobs_pb2.SetModelRouteRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> jobs_pb2.SetModelRouteResponse:
        route = await self._app.set_route(
            current_principal(), request.alias, targets_from_pb(list(request.targets))
        )
        return jobs_pb2.SetModelRouteResponse(route=route_to_pb(route))

    async def SetModelEndpoint(
        self,
        request: jobs_pb2.SetModelEndpointRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> jobs_pb2.SetModelEndpointResponse:
        chosen = await self._app.set_endpoint(
            current_principal(), request.model_version, request.endpoint
        )
        return jobs_pb2.SetModelEndpointResponse(
            model_version=chosen.model_version, endpoint=chosen.endpoint
        )
