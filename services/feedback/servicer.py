"""FeedbackService over gRPC: converts messages and delegates to the use cases."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
from google.api import httpbody_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from gouache.contracts.feedback.v1 import feedback_pb2, feedback_pb2_grpc
from gouache.runtime.audit import AuditReporter
from gouache.runtime.context import Principal, current_principal
from gouache.runtime.errors import InvalidArgument
from services.feedback.domain import FeedbackService, ModelVersionStats
from services.feedback.usage import UsageRecord
from services.feedback.usage_csv import CONTENT_TYPE, usage_csv


def _timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _instant(stamp: Timestamp, field: str) -> datetime:
    """An aware datetime of a request Timestamp; one out of Timestamp's range is refused."""
    try:
        return stamp.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError) as exc:
        raise InvalidArgument(f"{field} is not a valid timestamp: {exc}", field=field) from None


def _stats(stats: ModelVersionStats) -> feedback_pb2.ModelVersionStats:
    return feedback_pb2.ModelVersionStats(
        model_version=stats.model_version,
        jobs_succeeded=stats.jobs_succeeded,
        jobs_failed=stats.jobs_failed,
        error_rate=stats.error_rate,
        latency_p50_ms=stats.latency_p50_ms,
        latency_p95_ms=stats.latency_p95_ms,
        latency_p99_ms=stats.latency_p99_ms,
        ratings_count=stats.ratings_count,
        rating_mean=stats.rating_mean,
    )


def _usage(record: UsageRecord) -> feedback_pb2.UsageRecord:
    return feedback_pb2.UsageRecord(
        project_id=record.project_id,
        user_id=record.user_id,
        model_version=record.model_version,
        jobs_succeeded=record.jobs_succeeded,
        jobs_failed=record.jobs_failed,
        jobs_cached=record.jobs_cached,
        last_finished_at=_timestamp(record.last_finished_at),
        output_megapixels=record.output_megapixels,
        compute_seconds=record.compute_ms / 1000,
        gpu_seconds=record.gpu_ms / 1000,
        period=record.period,
    )


def _window(
    request: feedback_pb2.GetUsageRequest | feedback_pb2.ExportUsageRequest,
) -> tuple[datetime | None, datetime | None]:
    since = _instant(request.since, "since") if request.HasField("since") else None
    until = _instant(request.until, "until") if request.HasField("until") else None
    return since, until


class FeedbackServicer(feedback_pb2_grpc.FeedbackServiceServicer):
    """One method per RPC; rules live in FeedbackService."""

    def __init__(self, service: FeedbackService, audit: AuditReporter | None = None) -> None:
        self._service = service
        self._audit = audit

    async def _audit_read(
        self,
        principal: Principal,
        request: feedback_pb2.GetUsageRequest | feedback_pb2.ExportUsageRequest,
        what: str,
    ) -> None:
        """An admin reading usage that is not only their own goes to the audit log (the
        target names the project when one was asked for: "usage:project:prj_...")."""
        user_id = request.user_id.strip()
        project_id = request.project_id.strip()
        if self._audit is None or not principal.is_admin:
            return
        if user_id == principal.user_id and not project_id:
            return
        target = f"usage:project:{project_id}" if project_id else f"usage:{user_id or '*'}"
        await self._audit.report(
            principal, "usage.read_other", target=target, subject_id=user_id, detail=what
        )

    async def EraseUser(
        self, request: feedback_pb2.EraseUserRequest, context: grpc.aio.ServicerContext
    ) -> feedback_pb2.EraseUserResponse:
        deleted, anonymised = await self._service.erase_user(request.user_id)
        return feedback_pb2.EraseUserResponse(
            ratings_deleted=deleted, outcomes_anonymised=anonymised
        )

    async def SubmitFeedback(
        self, request: feedback_pb2.SubmitFeedbackRequest, context: grpc.aio.ServicerContext
    ) -> feedback_pb2.SubmitFeedbackResponse:
        saved = await self._service.submit(
            current_principal(),
            job_id=request.job_id,
            rating=request.rating,
            comments=request.comments,
        )
        return feedback_pb2.SubmitFeedbackResponse(
            feedback_id=saved.feedback_id,
            job_id=saved.job_id,
            rating=saved.rating,
            created_at=_timestamp(saved.created_at),
        )

    async def GetModelVersionStats(
        self,
        request: feedback_pb2.GetModelVersionStatsRequest,
        context: grpc.aio.ServicerContext,
    ) -> feedback_pb2.ModelVersionStats:
        since = _instant(request.since, "since") if request.HasField("since") else None
        stats = await self._service.stats(request.model_version, since=since)
        return _stats(stats)

    async def ListModelVersionStats(
        self,
        request: feedback_pb2.ListModelVersionStatsRequest,
        context: grpc.aio.ServicerContext,
    ) -> feedback_pb2.ListModelVersionStatsResponse:
        return feedback_pb2.ListModelVersionStatsResponse(
            stats=[_stats(stats) for stats in await self._service.all_stats()]
        )

    async def GetUsage(
        self, request: feedback_pb2.GetUsageRequest, context: grpc.aio.ServicerContext
    ) -> feedback_pb2.GetUsageResponse:
        since, until = _window(request)
        principal = current_principal()
        records = await self._service.usage(
            principal,
            user_id=request.user_id,
            since=since,
            until=until,
            group_by=request.group_by,
            project_id=request.project_id,
        )
        await self._audit_read(principal, request, "GetUsage")
        return feedback_pb2.GetUsageResponse(usage=[_usage(record) for record in records])

    async def ExportUsage(
        self, request: feedback_pb2.ExportUsageRequest, context: grpc.aio.ServicerContext
    ) -> httpbody_pb2.HttpBody:
        since, until = _window(request)
        principal = current_principal()
        records = await self._service.usage(
            principal,
            user_id=request.user_id,
            since=since,
            until=until,
            group_by=request.group_by,
            project_id=request.project_id,
        )
        await self._audit_read(principal, request, "ExportUsage")
        return httpbody_pb2.HttpBody(content_type=CONTENT_TYPE, data=usage_csv(records))
