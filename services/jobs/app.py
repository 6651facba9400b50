"""The jobs data plane: each use case reads, decides with the domain, and writes in one unit."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from gouache import catalogue
from gouache.catalogue import TrainedStyle
from gouache.db import new_id, utc_now
from gouache.priority import PREVIEW, tier_of
from gouache.runtime.context import Principal, job_id_var
from gouache.runtime.errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
)
from services.jobs import metrics as job_metrics
from services.jobs.batches import BatchesApp
from services.jobs.clients import DownloadSigner, ImageResolver, ResolvedImage
from services.jobs.convert import job_created_event, status_event
from services.jobs.domain import jobs as job_rules
from services.jobs.domain.batches import DEFAULT_MAX_ITEMS
from services.jobs.domain.cache import (
    CachePolicy,
    answered_from,
    result_cache_key,
)
from services.jobs.domain.capabilities import StyleImage, check_params, check_styles
from services.jobs.domain.jobs import (
    ExecutionOutcome,
    ExecutionSucceeded,
    InvalidEvent,
    Job,
    JobChange,
    JobStatus,
)
from services.jobs.domain.lanes import PreviewPolicy, needs_preview_model, preview_params
from services.jobs.domain.paging import check_id
from services.jobs.domain.quota import QuotaPolicy
from services.jobs.domain.requests import (
    JobRequest,
    check_overlap,
    choose_idempotency_key,
    validate_job_request,
)
from services.jobs.domain.routing import (
    ModelVersion,
    RoutingTable,
)
from services.jobs.inputs_app import JobInputs
from services.jobs.models_app import ModelRoutingUseCases
from services.jobs.notifier import JobNotifier
from services.jobs.quota_app import QuotaGate
from services.jobs.reads_app import JobReads, JobView
from services.jobs.removal_app import JobRemoval
from services.jobs.result_links import ResultLinks
from services.jobs.routing_cache import RoutingCache
from services.jobs.store import JobStore, UnitOfWork
from services.jobs.webhooks_app import WebhookUseCases

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobsConfig:
    """The knobs of the data plane (from JobsSettings)."""

    idempotency_ttl_s: int = 24 * 3600
    download_url_ttl_s: int = 3600
    watch_poll_interval_s: float = 0.5
    max_webhooks_per_user: int = 10
    allow_private_webhook_urls: bool = False
    result_cache: CachePolicy = dataclasses.field(default_factory=CachePolicy)
    preview: PreviewPolicy = dataclasses.field(default_factory=PreviewPolicy)
    # ListModels answers from a copy of the routing table at most this old (0: no copy).
    routing_cache_ttl_s: float = 1.0
    # The most content images one CreateBatch may carry.
    max_batch_items: int = DEFAULT_MAX_ITEMS
    # A style URL an owner resolved is reused this long by this replica (0: every time).
    style_resolve_ttl_s: float = 60.0
    # Each plan's monthly compute-seconds (domain.quota), checked by CreateJob and CreateBatch.
    quotas: QuotaPolicy = dataclasses.field(default_factory=QuotaPolicy)


def _nothing() -> None:
    return None


def _trained_styles(version: ModelVersion) -> tuple[TrainedStyle, ...] | None:
    """The catalogue's trained styles of a version; None for one it does not hold."""
    try:
        return catalogue.trained_styles(version.name)
    except KeyError:
        return None


class JobsApp(JobInputs, JobReads, WebhookUseCases, ModelRoutingUseCases, JobRemoval):
    """Jobs, webhooks and routing, independent of gRPC: the servicer only converts.

    Webhook and routing calls live in their own modules (webhooks_app, models_app), the
    request's images and the result cache in inputs_app, the reads of jobs (get, list,
    watch, wait) in reads_app, DeleteJob in removal_app.
    """

    def __init__(
        self,
        store: JobStore,
        images: ImageResolver,
        downloads: DownloadSigner,
        *,
        config: JobsConfig = JobsConfig(),
        notifier: JobNotifier | None = None,
        on_events: Callable[[], None] = _nothing,
        on_deliveries: Callable[[], None] = _nothing,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store = store
        self.notifier = notifier or JobNotifier()
        self._images = images
        self.result_links = ResultLinks(downloads, now=now)
        self._downloads: DownloadSigner = self.result_links
        self._config = config
        self._on_events = on_events
        self._on_deliveries = on_deliveries
        self._now = now
        self._routing = RoutingCache(store.routing_table, ttl_s=config.routing_cache_ttl_s)
        self.quota = QuotaGate(store, config.quotas)
        self._init_inputs()
        self.batches = BatchesApp(
            self,
            images,
            downloads,
            max_items=config.max_batch_items,
            idempotency_ttl_s=config.idempotency_ttl_s,
            download_url_ttl_s=config.download_url_ttl_s,
            now=now,
        )

    # -- jobs ----------------------------------------------------------------------------

    async def create_job(
        self,
        principal: Principal,
        request: JobRequest,
        *,
        header_key: str | None = None,
        batch: tuple[str, int] | None = None,
        images: tuple[ResolvedImage, tuple[ResolvedImage, ...]] | None = None,
    ) -> tuple[Job, bool]:
        """Creates a pending job, or returns the one an idempotency key already made.

        Returns the job and whether it is new. The job and its JobCreated event are
        written in one transaction; a key reused for a different request is refused.
        `batch` makes the job an item of a batch (its id and the item's position);
        `images` are the request's content and style images when already resolved.
        A job that would run is refused once the owner's plan quota is used; one the result
        cache answers is not (it costs no compute); a batch is checked once, up front.
        """
        # Jobs belong to the project the token acts in (the user's own id: their personal
        # project); the user who asked is kept as the job's creator.
        owner = principal.project_id
        key = choose_idempotency_key(request.idempotency_key, header_key)
        valid = validate_job_request(replace(request, idempotency_key=key))
        fingerprint = valid.fingerprint()
        now = self._now()
        key_expired_before = now - timedelta(seconds=self._config.idempotency_ttl_s)
        # Only a job found holding the key (its key expired) has a key to release.
        release_before: datetime | None = None
        if key:
            existing = await self.store.find_job_by_key(owner, key)
            if existing is not None and existing.created_at >= key_expired_before:
                return self._replay(existing, fingerprint), False
            if existing is not None:
                release_before = key_expired_before
        job_id = new_id("job")
        token = job_id_var.set(job_id)
        try:
            table, chosen = await self._route(valid.model_version, job_id)
            valid, version = self.fit_version(table, valid, chosen, job_id)
            content, styles = images or await self._resolve_images(valid, owner)
            self.check_style_images(version, styles)
            job = Job(
                job_id=job_id,
                owner_id=owner,
                user_id=principal.user_id,
                status=JobStatus.PENDING,
                requested_model_version=valid.model_version,
                model_version=version.name,
                content_url=valid.content_url,
                content_image_id=content.image_id,
                style_urls=valid.style_urls,
                style_image_ids=tuple(style.image_id for style in styles),
                params=valid.params,
                created_at=now,
                updated_at=now,
                idempotency_key=key or None,
                request_fingerprint=fingerprint,
                eta_seconds=version.eta_seconds,
                cache_key=result_cache_key(
                    version, content.sha256, [style.sha256 for style in styles], valid.params
                ),
                lane=valid.lane,
                batch_id=batch[0] if batch else None,
                batch_index=batch[1] if batch else None,
            )
            hit = await self._cached_answer(job, bypass=valid.no_cache, now=now)
            if hit is None and batch is None:
                await self.quota.check(principal, now)
            if hit is not None:
                job = answered_from(job, hit)
                event = status_event(job)
                if event is None:
                    raise AssertionError("a succeeded job always has an event")
            else:
                event = job_created_event(
                    job,
                    inference_endpoint=table.endpoint_of(version.name),
                    tier=tier_of(principal.plan),
                )
            deliveries = await self.store.create_job(
                job, event, key_expired_before=release_before, cache_hit=hit, now=now
            )
            if deliveries is None:
                winner = await self.store.find_job_by_key(owner, key)
                if winner is None:
                    raise Aborted(
                        "another request with this idempotency key was being handled at the "
                        "same time; retry the request",
                        field="idempotency_key",
                    )
                return self._replay(winner, fingerprint), False
            self._on_events()
            if hit is not None:
                job_metrics.record_final(job)
            if deliveries:
                self._on_deliveries()
            self.notifier.notify(job_id)
            logger.info(
                "job created",
                extra={
                    "owner_id": owner,
                    "user_id": principal.user_id,
                    "model_version": job.model_version,
                    "requested_model_version": job.requested_model_version,
                    "styles": len(job.style_urls),
                    "cached": job.cached,
                    "lane": job.lane,
                },
            )
            return job, True
        finally:
            job_id_var.reset(token)

    async def _route(self, requested: str, job_id: str) -> tuple[RoutingTable, ModelVersion]:
        """The routing table and the version a job runs on.

        From the replica's copy (at most `routing_cache_ttl_s` old; reading the table was
        three queries per job): a route or weight changed through another replica applies
        to this one's jobs within that time. A name the copy cannot route is asked of the
        database before it is refused, so a version just registered elsewhere is found.
        """
        table = await self._routing.get()
        try:
            return table, table.resolve(requested, job_id)
        except (InvalidArgument, FailedPrecondition):
            table = await self.store.routing_table()
            return table, table.resolve(requested, job_id)

    def fit_version(
        self, table: RoutingTable, valid: JobRequest, version: ModelVersion, job_id: str
    ) -> tuple[JobRequest, ModelVersion]:
        """The request and version a job runs with once its lane applies, checked.

        A preview is shrunk and, for an optimising family, runs the preview model.
        Raises when the params do not fit the version (overlap, capabilities).
        """
        if valid.lane == PREVIEW:
            policy = self._config.preview
            valid = replace(valid, params=preview_params(valid.params, policy))
            if needs_preview_model(version.family):
                version = table.resolve(policy.model, job_id)
        check_overlap(valid.params, valid.params.tile_size or version.tile_size)
        check_params(version, valid.params)
        return valid, version

    @staticmethod
    def check_style_images(version: ModelVersion, styles: Sequence[ResolvedImage]) -> None:
        """Refuses styles the version cannot blend or was not trained on."""
        check_styles(
            version,
            [StyleImage(f"style_urls[{i}]", style.sha256) for i, style in enumerate(styles)],
            _trained_styles(version),
        )

    @staticmethod
    def _replay(existing: Job, fingerprint: str) -> Job:
        if existing.request_fingerprint != fingerprint:
            raise AlreadyExists(
                f"idempotency key {existing.idempotency_key!r} was already used for job "
                f"{existing.job_id} with different parameters; use a new key for a different "
                "request",
                field="idempotency_key",
                reason="idempotency_key_reused",
            )
        logger.info("idempotent retry", extra={"job_id": existing.job_id})
        return existing

    async def cancel_job(self, principal: Principal, job_id: str) -> JobView:
        """Cancels a pending or running job; a canceled one is returned as it is."""
        job_id = check_id(job_id, "job", field="job_id")
        token = job_id_var.set(job_id)
        try:
            now = self._now()
            deliveries = 0
            async with self.store.transaction() as uow:
                job = await uow.job_for_update(job_id)
                if job is None or not self._visible(principal, job):
                    raise self._not_found(job_id)
                change = job_rules.cancel(job, now)
                if change is not None:
                    await uow.save_job(change.job)
                    deliveries = await self.record_change(uow, change, now)
            if change is None:
                return JobView(job)
            self.after_change(change, deliveries)
            logger.info("job canceled", extra={"by": principal.user_id})
            return JobView(change.job)
        finally:
            job_id_var.reset(token)

    async def apply_execution(self, event_id: str, job_id: str, outcome: ExecutionOutcome) -> bool:
        """Applies an execution event once; False for a duplicate or an event that changes nothing.

        Raises InvalidEvent for an event that can never apply (unknown job, no result).
        """
        token = job_id_var.set(job_id)
        try:
            now = self._now()
            async with self.store.transaction() as uow:
                if not await uow.mark_processed(event_id):
                    logger.info("duplicate execution event ignored", extra={"event_id": event_id})
                    return False
                job = await uow.job_for_update(job_id)
                if job is None:
                    raise InvalidEvent(f"execution event {event_id} names unknown job {job_id}")
                change = job_rules.apply_execution(job, outcome, now)
                if change is None:
                    return False
                await uow.save_job(change.job)
                deliveries = await self.record_change(uow, change, now)
                if change.entered is JobStatus.SUCCEEDED:
                    await self._remember(uow, change.job, now)
                    await self.quota.count(uow.session, change.job, now)
            if isinstance(outcome, ExecutionSucceeded) and outcome.link is not None:
                # Before the waiters wake: their first read of the job can use it.
                self.result_links.remember(outcome.result_image_id, outcome.link)
            self.after_change(change, deliveries)
            if change.entered is JobStatus.SUCCEEDED:
                await self._trim_cache_when_due(now)
            if change.entered is not None:
                logger.info(
                    "job %s",
                    change.entered.value,
                    extra={
                        "status": change.entered.value,
                        "latency_ms": change.job.latency_ms,
                        "model_version": change.job.model_version,
                        "error_code": change.job.error_code,
                    },
                )
            return True
        finally:
            job_id_var.reset(token)

    async def record_change(self, uow: UnitOfWork, change: JobChange, now: datetime) -> int:
        """The outbox event and webhook deliveries of a change, in its transaction."""
        if change.entered is None:
            return 0
        event = status_event(change.job)
        if event is not None:
            await uow.add_event(event)
        hook_event = change.webhook_event
        deliveries = await uow.enqueue_webhooks(change.job, hook_event, now) if hook_event else 0
        if change.job.batch_id and change.entered.is_final:
            deliveries += await uow.settle_batch(change.job.batch_id, now)
        return deliveries

    def events_queued(self) -> None:
        """Wakes the outbox relay after a commit that stored events."""
        self._on_events()

    def deliveries_queued(self) -> None:
        """Wakes the webhook deliverer after a commit that queued deliveries."""
        self._on_deliveries()

    def after_change(self, change: JobChange, deliveries: int) -> None:
        """After a change committed: publish its events, count it, send its webhooks, wake
        watchers."""
        if change.entered is not None and change.entered is not JobStatus.RUNNING:
            self._on_events()
        if change.entered is not None and change.entered.is_final:
            job_metrics.record_final(change.job)
        if deliveries:
            self._on_deliveries()
        self.notifier.notify(change.job.job_id)
