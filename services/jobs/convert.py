"""Conversions between protobuf messages (API and events) and the domain's dataclasses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from gouache import priority
from gouache.bus import subjects
from gouache.contracts.common.v1 import common_pb2
from gouache.contracts.events.v1 import events_pb2
from gouache.contracts.jobs.v1 import jobs_pb2
from gouache.db import new_id
from gouache.results import ResultLink
from services.jobs.clients import ResultExpired
from services.jobs.domain.batches import Batch, BatchRequest, counts_dict
from services.jobs.domain.jobs import (
    ExecutionFailed,
    ExecutionOutcome,
    ExecutionProgress,
    ExecutionSucceeded,
    InvalidEvent,
    Job,
    JobStatus,
)
from services.jobs.domain.requests import JobRequest, StylizeParams
from services.jobs.domain.routing import ModelRoute, ModelVersion, RouteTarget, parse_config
from services.jobs.domain.webhooks import Webhook

# Job.latency_ms is an int32 in the API (JSON shows it as a number); 24 days fit in it.
_MAX_INT32 = 2**31 - 1


def timestamp(value: datetime) -> Timestamp:
    """A protobuf Timestamp of an aware datetime."""
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def params_from_pb(params: common_pb2.StylizeParams) -> StylizeParams:
    """Request params; fields with presence stay None when the client left them out."""

    return StylizeParams(
        alpha=params.alpha if params.HasField("alpha") else None,
        tv_weight=params.tv_weight if params.HasField("tv_weight") else None,
        luminance_only=params.luminance_only,
        histogram_match=params.histogram_match,
        tile_size=params.tile_size if params.HasField("tile_size") else None,
        overlap=params.overlap if params.HasField("overlap") else None,
        seed=params.seed if params.HasField("seed") else None,
        weights=tuple(params.weights),
        prompt=params.prompt if params.HasField("prompt") else None,
        output_format=params.output_format,
        quality=params.quality if params.HasField("quality") else None,
        max_side=params.max_side if params.HasField("max_side") else None,
    )


def params_to_pb(params: StylizeParams) -> common_pb2.StylizeParams:
    """The stored params as the shared message (for the API and for JobCreated)."""
    message = common_pb2.StylizeParams(
        luminance_only=params.luminance_only,
        histogram_match=params.histogram_match,
        weights=list(params.weights),
        output_format=params.output_format,
    )
    if params.alpha is not None:
        message.alpha = params.alpha
    if params.tv_weight is not None:
        message.tv_weight = params.tv_weight
    if params.tile_size is not None:
        message.tile_size = params.tile_size
    if params.overlap is not None:
        message.overlap = params.overlap
    if params.seed is not None:
        message.seed = params.seed
    if params.prompt is not None:
        message.prompt = params.prompt
    if params.quality is not None:
        message.quality = params.quality
    if params.max_side is not None:
        message.max_side = params.max_side
    return message


def job_request_from_pb(request: jobs_pb2.CreateJobRequest) -> JobRequest:
    """A CreateJob request, not yet validated."""
    return JobRequest(
        content_url=request.content_url,
        style_urls=tuple(request.style_urls),
        model_version=request.model_version,
        params=params_from_pb(request.params),
        idempotency_key=request.idempotency_key,
        no_cache=request.no_cache,
        lane=request.lane,
    )


def job_to_pb(
    job: Job, result_url: str | None = None, *, expired: ResultExpired | None = None
) -> jobs_pb2.Job:
    """A job as its owner sees it (`expired`: its result's retention period ended)."""
    message = jobs_pb2.Job(
        job_id=job.job_id,
        status=job.status.value,
        model_version=job.model_version,
        requested_model_version=job.requested_model_version,
        content_url=job.content_url,
        style_urls=list(job.style_urls),
        params=params_to_pb(job.params),
        latency_ms=min(job.latency_ms or 0, _MAX_INT32),
        progress=job.progress,
        eta_seconds=job.eta_seconds,
        created_at=timestamp(job.created_at),
        updated_at=timestamp(job.updated_at),
        result_image_id=job.result_image_id or "",
        cached=job.cached,
        lane=job.lane,
        project_id=job.owner_id,
        user_id=job.user_id,
    )
    if result_url is not None:
        message.result_url = result_url
    if expired is not None:
        message.result_gone = "expired"
        if expired.expired_at is not None:
            message.result_expires_at.CopyFrom(timestamp(expired.expired_at))
    if job.error is not None:
        message.error = job.error
    if job.error_code is not None:
        message.error_code = job.error_code
    return message


def batch_request_from_pb(request: jobs_pb2.CreateBatchRequest) -> BatchRequest:
    """A CreateBatch request, not yet validated."""
    return BatchRequest(
        content_urls=tuple(request.content_urls),
        style_urls=tuple(request.style_urls),
        model_version=request.model_version,
        params=params_from_pb(request.params),
        idempotency_key=request.idempotency_key,
        no_cache=request.no_cache,
        lane=request.lane,
    )


def batch_item_to_pb(job: Job, result_url: str | None = None) -> jobs_pb2.BatchItem:
    """One item of a batch: its job in brief."""
    message = jobs_pb2.BatchItem(
        index=job.batch_index or 0,
        job_id=job.job_id,
        content_url=job.content_url,
        status=job.status.value,
        cached=job.cached,
    )
    if result_url is not None:
        message.result_url = result_url
    if job.error is not None:
        message.error = job.error
    if job.error_code is not None:
        message.error_code = job.error_code
    return message


def batch_to_pb(
    batch: Batch,
    counts: Mapping[JobStatus, int],
    items: Sequence[tuple[Job, str | None]] = (),
    next_page_token: str = "",
) -> jobs_pb2.Batch:
    """A batch as its owner sees it, with one page of items."""
    message = jobs_pb2.Batch(
        batch_id=batch.batch_id,
        status=batch.status.value,
        total=batch.total,
        counts=jobs_pb2.BatchCounts(**counts_dict(counts)),
        model_version=batch.requested_model_version,
        style_urls=list(batch.style_urls),
        params=params_to_pb(batch.params),
        lane=batch.lane,
        created_at=timestamp(batch.created_at),
        items=[batch_item_to_pb(job, url) for job, url in items],
        next_page_token=next_page_token,
    )
    if batch.finished_at is not None:
        message.finished_at.CopyFrom(timestamp(batch.finished_at))
    return message


def webhook_to_pb(webhook: Webhook) -> jobs_pb2.Webhook:
    """A webhook without its secret."""
    return jobs_pb2.Webhook(
        webhook_id=webhook.webhook_id,
        url=webhook.url,
        events=list(webhook.events),
        created_at=timestamp(webhook.created_at),
    )


def version_from_pb(version: jobs_pb2.ModelVersion) -> ModelVersion:
    """A version to register (its config_json must be a JSON object)."""
    return ModelVersion(
        name=version.name,
        family=version.family,
        encoder=version.encoder,
        tile_size=version.tile_size,
        config=parse_config(version.config_json),
        description=version.description,
    )


def version_to_pb(version: ModelVersion) -> jobs_pb2.ModelVersion:
    """A registered version."""
    message = jobs_pb2.ModelVersion(
        name=version.name,
        family=version.family,
        encoder=version.encoder,
        tile_size=version.tile_size,
        config_json=version.config_json,
        description=version.description,
    )
    if version.created_at is not None:
        message.created_at.CopyFrom(timestamp(version.created_at))
    return message


def targets_from_pb(targets: list[jobs_pb2.RouteTarget]) -> list[RouteTarget]:
    """Route targets as requested."""
    return [RouteTarget(model_version=t.model_version.strip(), weight=t.weight) for t in targets]


def route_to_pb(route: ModelRoute) -> jobs_pb2.ModelRoute:
    """An alias and its weighted targets."""
    return jobs_pb2.ModelRoute(
        alias=route.alias,
        targets=[
            jobs_pb2.RouteTarget(model_version=t.model_version, weight=t.weight)
            for t in route.targets
        ],
    )


@dataclass(frozen=True)
class OutgoingEvent:
    """An event for the outbox: its subject, message and id."""

    subject: str
    message: Message
    event_id: str


def job_created_event(
    job: Job, *, inference_endpoint: str = "", tier: str = priority.DEFAULT_TIER
) -> OutgoingEvent:
    """The JobCreated event workers start from, with the version's inference endpoint.

    It goes to the subject of the job's priority class (its lane and its owner's tier).
    """
    event_id = new_id("evt")
    message = events_pb2.JobCreated(
        event_id=event_id,
        job_id=job.job_id,
        owner_id=job.owner_id,
        content_image_id=job.content_image_id,
        style_image_ids=list(job.style_image_ids),
        model_version=job.model_version,
        params=params_to_pb(job.params),
        created_at=timestamp(job.created_at),
        inference_endpoint=inference_endpoint,
        lane=job.lane,
        tier=tier,
    )
    return OutgoingEvent(subjects.job_created_subject(job.lane, tier), message, event_id)


def status_event(job: Job) -> OutgoingEvent | None:
    """The event a job publishes on entering its status, if that status has one."""
    finished_at = job.finished_at or job.updated_at
    event_id = new_id("evt")
    if job.status is JobStatus.SUCCEEDED:
        succeeded = events_pb2.JobSucceeded(
            event_id=event_id,
            job_id=job.job_id,
            owner_id=job.owner_id,
            model_version=job.model_version,
            result_image_id=job.result_image_id or "",
            latency_ms=job.latency_ms or 0,
            finished_at=timestamp(finished_at),
            cached=job.cached,
            output_width=job.output_width or 0,
            output_height=job.output_height or 0,
            compute_ms=job.compute_ms,
            device=job.device,
            user_id=job.user_id,
        )
        return OutgoingEvent(subjects.JOBS_SUCCEEDED, succeeded, event_id)
    if job.status is JobStatus.FAILED:
        failed = events_pb2.JobFailed(
            event_id=event_id,
            job_id=job.job_id,
            owner_id=job.owner_id,
            model_version=job.model_version,
            error_code=job.error_code or "",
            error_message=job.error or "",
            latency_ms=job.latency_ms or 0,
            finished_at=timestamp(finished_at),
            user_id=job.user_id,
        )
        return OutgoingEvent(subjects.JOBS_FAILED, failed, event_id)
    if job.status is JobStatus.CANCELED:
        canceled = events_pb2.JobCanceled(
            event_id=event_id, job_id=job.job_id, owner_id=job.owner_id
        )
        return OutgoingEvent(subjects.JOBS_CANCELED, canceled, event_id)
    return None


def batch_finished_event(batch: Batch, counts: Mapping[JobStatus, int]) -> OutgoingEvent:
    """The BatchFinished event of a batch that just ended."""
    event_id = new_id("evt")
    message = events_pb2.BatchFinished(
        event_id=event_id,
        batch_id=batch.batch_id,
        owner_id=batch.owner_id,
        status=batch.status.value,
        total=batch.total,
        succeeded=counts.get(JobStatus.SUCCEEDED, 0),
        failed=counts.get(JobStatus.FAILED, 0),
        canceled=counts.get(JobStatus.CANCELED, 0),
        finished_at=timestamp(batch.finished_at or batch.updated_at),
    )
    return OutgoingEvent(subjects.JOBS_BATCH_FINISHED, message, event_id)


def execution_outcome(subject: str, message: Message) -> tuple[str, ExecutionOutcome]:
    """The job id and outcome an execution event reports."""
    if isinstance(message, events_pb2.ExecutionProgress):
        started_at = (
            message.started_at.ToDatetime(tzinfo=UTC) if message.HasField("started_at") else None
        )
        outcome: ExecutionOutcome = ExecutionProgress(
            fraction=message.fraction, started_at=started_at
        )
    elif isinstance(message, events_pb2.ExecutionSucceeded):
        outcome = ExecutionSucceeded(
            result_image_id=message.result_image_id,
            output_width=max(0, message.output_width),
            output_height=max(0, message.output_height),
            compute_ms=max(0, message.compute_ms),
            device=message.device.strip().lower()[:16],
            link=_result_link(message),
        )
    elif isinstance(message, events_pb2.ExecutionFailed):
        outcome = ExecutionFailed(
            error_code=message.error_code, error_message=message.error_message
        )
    else:
        raise InvalidEvent(f"{subject} carries {type(message).__name__}, not an execution event")
    job_id = str(getattr(message, "job_id", ""))
    if not job_id:
        raise InvalidEvent(f"{type(message).__name__} on {subject} names no job")
    return job_id, outcome


def _result_link(message: events_pb2.ExecutionSucceeded) -> ResultLink | None:
    """The signed URL a worker passed on, if it passed one that has an expiry."""
    if not message.result_url or not message.HasField("result_url_expires_at"):
        return None
    return ResultLink.from_timestamps(
        message.result_url,
        message.result_url_expires_at,
        message.result_expires_at if message.HasField("result_expires_at") else None,
    )
