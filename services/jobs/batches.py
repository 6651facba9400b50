"""Batches: one request for many content images with one style set, one job per item."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from gouache.db import new_id, utc_now
from gouache.runtime.context import Principal
from gouache.runtime.errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from services.jobs.clients import DownloadSigner, ImageResolver, ResolvedImage
from services.jobs.domain import batches as batch_rules
from services.jobs.domain import jobs as job_rules
from services.jobs.domain.batches import (
    Batch,
    BatchCursor,
    BatchRequest,
    BatchStatus,
    decode_item_token,
    encode_item_token,
    item_key,
    item_page_size,
    validate_batch_request,
)
from services.jobs.domain.jobs import Job, JobChange, JobStatus
from services.jobs.domain.paging import check_id, page_size
from services.jobs.domain.requests import choose_idempotency_key
from services.jobs.domain.routing import ModelVersion

if TYPE_CHECKING:
    from services.jobs.app import JobsApp

logger = logging.getLogger(__name__)

# Storage look-ups (ResolveImageUrl) at once while a batch's images are checked up front.
_RESOLVE_CONCURRENCY = 16
# Result URLs signed at once for a page of items.
_SIGN_CONCURRENCY = 8


@dataclass(frozen=True)
class ItemView:
    """An item's job and, once it succeeded, a fresh signed URL of its result."""

    job: Job
    result_url: str | None = None


@dataclass(frozen=True)
class BatchView:
    """A batch, its items' counts per status, and one page of its items."""

    batch: Batch
    counts: dict[JobStatus, int]
    items: list[ItemView] = field(default_factory=list)
    next_page_token: str = ""


def _about_field(exc: BaseException, name: str) -> BaseException:
    """Storage's answer about one URL, told as an answer about that request field."""
    if isinstance(exc, NotFound | FailedPrecondition | InvalidArgument):
        return type(exc)(f"{name}: {exc.message}", field=name, reason=exc.reason)
    return exc


class BatchesApp:
    """CreateBatch, GetBatch, ListBatches and CancelBatch; each item is a JobsApp job."""

    def __init__(
        self,
        jobs: JobsApp,
        images: ImageResolver,
        downloads: DownloadSigner,
        *,
        max_items: int = batch_rules.DEFAULT_MAX_ITEMS,
        idempotency_ttl_s: int = 24 * 3600,
        download_url_ttl_s: int = 3600,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._jobs = jobs
        self._images = images
        self._downloads = downloads
        self._max_items = max_items
        self._idempotency_ttl_s = idempotency_ttl_s
        self._download_url_ttl_s = download_url_ttl_s
        self._now = now

    # -- create ---------------------------------------------------------------------------

    async def create_batch(
        self, principal: Principal, request: BatchRequest, *, header_key: str | None = None
    ) -> BatchView:
        """Creates a batch and its item jobs, or returns the one an idempotency key made.

        Every item is checked first (URLs, images, model, params, styles): a bad one is
        refused naming its field, and nothing is created. The batch row is written, then
        each item as a job whose idempotency key is derived from the batch, so a retry
        with the batch's key after an interruption creates only the items still missing.
        An owner whose plan's monthly compute is used is refused before anything is made.
        """
        store = self._jobs.store
        owner = principal.project_id
        key = choose_idempotency_key(request.idempotency_key, header_key)
        valid = validate_batch_request(
            replace(request, idempotency_key=key), max_items=self._max_items
        )
        fingerprint = valid.fingerprint()
        now = self._now()
        key_expired_before = now - timedelta(seconds=self._idempotency_ttl_s)
        if key:
            existing = await store.find_batch_by_key(owner, key)
            if existing is not None and existing.created_at >= key_expired_before:
                return await self._resume(principal, existing, fingerprint)
        await self._jobs.quota.check(principal, now)
        contents, styles = await self._resolve_images(valid, owner)
        await self._preflight(valid, styles)
        batch = Batch(
            batch_id=new_id("bat"),
            owner_id=owner,
            status=BatchStatus.RUNNING,
            total=len(valid.content_urls),
            content_urls=valid.content_urls,
            style_urls=valid.style_urls,
            requested_model_version=valid.model_version,
            params=valid.params,
            lane=valid.lane,
            no_cache=valid.no_cache,
            created_at=now,
            updated_at=now,
            idempotency_key=key or None,
            request_fingerprint=fingerprint,
        )
        if not await store.create_batch(batch, key_expired_before=key_expired_before):
            winner = await store.find_batch_by_key(owner, key)
            if winner is None:
                raise Aborted(
                    "another request with this idempotency key was being handled at the "
                    "same time; retry the request",
                    field="idempotency_key",
                )
            return await self._resume(principal, winner, fingerprint)
        logger.info(
            "batch created",
            extra={
                "batch_id": batch.batch_id,
                "owner_id": owner,
                "items": batch.total,
                "lane": batch.lane,
            },
        )
        await self._create_items(principal, batch, contents, styles)
        return await self._view(batch.batch_id, start=0, size=0)

    async def _resume(self, principal: Principal, batch: Batch, fingerprint: str) -> BatchView:
        """An idempotent retry: the same batch, with any item still missing created."""
        if batch.request_fingerprint != fingerprint:
            raise AlreadyExists(
                f"idempotency key {batch.idempotency_key!r} was already used for batch "
                f"{batch.batch_id} with a different request; use a new key for a different "
                "batch",
                field="idempotency_key",
                reason="idempotency_key_reused",
            )
        logger.info("idempotent batch retry", extra={"batch_id": batch.batch_id})
        await self._create_items(principal, batch, None, None)
        return await self._view(batch.batch_id, start=0, size=0)

    async def _create_items(
        self,
        principal: Principal,
        batch: Batch,
        contents: Sequence[ResolvedImage] | None,
        styles: tuple[ResolvedImage, ...] | None,
    ) -> None:
        """Creates the batch's items that do not exist yet, in order; stops if it ended."""
        if batch.status.is_final:
            return
        existing = await self._jobs.store.batch_item_indexes(batch.batch_id)
        request = batch.request()
        created = 0
        for index in range(batch.total):
            if index in existing:
                continue
            item = replace(request.item(index), idempotency_key=item_key(batch.batch_id, index))
            images = None
            if contents is not None and styles is not None:
                images = (contents[index], styles)
            try:
                await self._jobs.create_job(
                    principal, item, batch=(batch.batch_id, index), images=images
                )
            except FailedPrecondition as exc:
                if exc.reason != "batch_final":
                    raise
                logger.info(
                    "batch ended while its items were created",
                    extra={"batch_id": batch.batch_id, "items_created": created},
                )
                return
            created += 1
        if created:
            logger.info(
                "batch items created", extra={"batch_id": batch.batch_id, "items_created": created}
            )

    async def _resolve_images(
        self, request: BatchRequest, owner: str
    ) -> tuple[list[ResolvedImage], tuple[ResolvedImage, ...]]:
        """Every content and style image, checked with storage before anything is created."""
        gate = asyncio.Semaphore(_RESOLVE_CONCURRENCY)

        async def resolve(url: str) -> ResolvedImage:
            async with gate:
                return await self._images.resolve_image(url, owner)

        names = [
            *(f"content_urls[{i}]" for i in range(len(request.content_urls))),
            *(f"style_urls[{i}]" for i in range(len(request.style_urls))),
        ]
        urls = [*request.content_urls, *request.style_urls]
        results: Sequence[Any] = await asyncio.gather(
            *(resolve(url) for url in urls), return_exceptions=True
        )
        for name, result in zip(names, results, strict=True):
            if isinstance(result, BaseException):
                raise _about_field(result, name)
        count = len(request.content_urls)
        return list(results[:count]), tuple(results[count:])

    async def _preflight(self, request: BatchRequest, styles: tuple[ResolvedImage, ...]) -> None:
        """Checks the model, params and styles against every version an item may run on.

        An alias spreads items over its weighted targets, so each target with traffic is
        checked: no item fails at creation for a reason known up front.
        """
        table = await self._jobs.store.routing_table()
        name = request.model_version
        first = table.resolve(name, "")  # raises for an unknown name or an alias without traffic
        candidates: list[ModelVersion] = [first]
        route = table.routes.get(name)
        if route is not None:
            candidates = [
                table.versions[target.model_version]
                for target in route.targets
                if target.weight > 0 and target.model_version in table.versions
            ]
        item = request.item(0)
        for version in candidates:
            _, fitted = self._jobs.fit_version(table, item, version, "")
            self._jobs.check_style_images(fitted, styles)

    # -- read -----------------------------------------------------------------------------

    @staticmethod
    def _visible(principal: Principal, batch: Batch) -> bool:
        return batch.owner_id == principal.project_id or principal.is_admin or principal.is_service

    async def _visible_batch(self, principal: Principal, batch_id: str) -> Batch:
        batch_id = check_id(batch_id, "bat", field="batch_id")
        batch = await self._jobs.store.get_batch(batch_id)
        if batch is None or not self._visible(principal, batch):
            raise NotFound(f"batch {batch_id} not found", field="batch_id")
        return batch

    async def get_batch(
        self, principal: Principal, batch_id: str, *, size: int = 0, page_token: str = ""
    ) -> BatchView:
        """One of the caller's batches: its counts and a page of items in request order."""
        start = decode_item_token(page_token)
        limit = item_page_size(size)
        batch = await self._visible_batch(principal, batch_id)
        return await self._view(batch.batch_id, start=start, size=limit)

    async def _view(self, batch_id: str, *, start: int, size: int) -> BatchView:
        store = self._jobs.store
        limit = item_page_size(size)
        jobs = await store.batch_items(batch_id, start=start, limit=limit + 1)
        counts = (await store.batch_counts([batch_id]))[batch_id]
        batch = await store.get_batch(batch_id)
        if batch is None:
            raise NotFound(f"batch {batch_id} not found", field="batch_id")
        more = len(jobs) > limit
        next_token = encode_item_token(jobs[limit].batch_index or 0) if more else ""
        jobs = jobs[:limit]
        gate = asyncio.Semaphore(_SIGN_CONCURRENCY)

        async def view(job: Job) -> ItemView:
            async with gate:
                return await self._item(job)

        items = list(await asyncio.gather(*(view(job) for job in jobs)))
        return BatchView(batch, counts, items, next_token)

    async def _item(self, job: Job) -> ItemView:
        if job.status is not JobStatus.SUCCEEDED or not job.result_image_id:
            return ItemView(job)
        try:
            url = await self._downloads.sign_download(job.result_image_id, self._download_url_ttl_s)
        except NotFound:
            logger.warning(
                "result image of a succeeded batch item is missing",
                extra={"job_id": job.job_id, "result_image_id": job.result_image_id},
            )
            return ItemView(job)
        return ItemView(job, url)

    async def list_batches(
        self, principal: Principal, *, size: int, page_token: str
    ) -> tuple[list[BatchView], str]:
        """The batches of the caller's project, newest first, with counts, no items; next token."""
        limit = page_size(size)
        cursor = BatchCursor.decode(page_token) if page_token else None
        store = self._jobs.store
        after = (cursor.created_at, cursor.batch_id) if cursor else None
        batches = await store.list_batches(principal.project_id, after=after, limit=limit + 1)
        more = len(batches) > limit
        batches = batches[:limit]
        counts = await store.batch_counts([batch.batch_id for batch in batches])
        last = batches[-1] if batches else None
        next_token = BatchCursor(last.created_at, last.batch_id).encode() if more and last else ""
        return [BatchView(batch, counts[batch.batch_id]) for batch in batches], next_token

    # -- cancel ---------------------------------------------------------------------------

    async def cancel_batch(self, principal: Principal, batch_id: str) -> BatchView:
        """Cancels every item not final, and the batch; a final batch is returned as it is.

        One transaction: the items' cancellations, their events and webhooks, the batch's
        status and its one batch.finished delivery. Items are locked before the batch, in
        the order item completions lock them, so the two never deadlock. An item created
        just before the batch's lock was taken is locked after it, skipping one another
        transaction holds; such an item is canceled on its own right after.
        """
        batch = await self._visible_batch(principal, batch_id)
        now = self._now()
        changes: list[tuple[JobChange, int]] = []
        deliveries = 0
        left: set[str] = set()
        async with self._jobs.store.transaction() as uow:
            items = await uow.unfinished_items_for_update(batch.batch_id)
            locked = await uow.batch_for_update(batch.batch_id)
            canceled = None if locked is None else batch_rules.cancel(locked, now)
            if canceled is not None:
                await uow.save_batch(canceled)
                # Items committed while this transaction waited for the batch's lock.
                known = {job.job_id for job in items}
                late = [
                    job
                    for job in await uow.unfinished_items_for_update(
                        batch.batch_id, skip_locked=True
                    )
                    if job.job_id not in known
                ]
                for job in [*items, *late]:
                    change = None if job.status.is_final else job_rules.cancel(job, now)
                    if change is None:
                        continue
                    await uow.save_job(change.job)
                    changes.append((change, await self._jobs.record_change(uow, change, now)))
                left = await uow.unfinished_item_ids(batch.batch_id)
                counts = await uow.batch_counts(batch.batch_id)
                deliveries = await uow.record_batch_finished(canceled, counts, now)
        for change, item_deliveries in changes:
            self._jobs.after_change(change, item_deliveries)
        if canceled is not None:
            self._jobs.events_queued()
        if deliveries:
            self._jobs.deliveries_queued()
        for job_id in sorted(left):
            with contextlib.suppress(FailedPrecondition):  # it became final meanwhile
                await self._jobs.cancel_job(principal, job_id)
        if canceled is not None:
            logger.info(
                "batch canceled",
                extra={"batch_id": batch.batch_id, "items_canceled": len(changes)},
            )
        return await self._view(batch.batch_id, start=0, size=0)
