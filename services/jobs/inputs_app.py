"""What CreateJob reads before it writes: the request's images (storage, with the styles
remembered per owner) and the result cache (an earlier answer, storing a new one, trimming)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from gouache.lru import LruCache
from gouache.runtime.errors import FailedPrecondition, InvalidArgument, NotFound
from services.jobs import metrics as job_metrics
from services.jobs.clients import ImageResolver, ResolvedImage
from services.jobs.domain.cache import CacheEntry, entry_for
from services.jobs.domain.jobs import Job
from services.jobs.domain.requests import JobRequest
from services.jobs.store import JobStore, UnitOfWork

if TYPE_CHECKING:
    from services.jobs.app import JobsConfig

logger = logging.getLogger(__name__)

# Style URLs each replica remembers (per owner), the least recently used dropped first.
STYLE_RESOLVE_ENTRIES = 4096


def _about_field(exc: BaseException, field: str) -> BaseException:
    """Storage's answer about one URL, told as an answer about that request field."""
    if isinstance(exc, NotFound | FailedPrecondition | InvalidArgument):
        return type(exc)(f"{field}: {exc.message}", field=field, reason=exc.reason)
    return exc


class JobInputs:
    """JobsApp's image resolution and result cache (a mixin: JobsApp sets the attributes
    declared here and calls `_init_inputs`)."""

    store: JobStore
    _config: JobsConfig
    _images: ImageResolver

    def _init_inputs(self) -> None:
        self._next_cache_trim = 0.0
        # (owner, style URL) -> (its image, monotonic time it stops being reused).
        self._styles: LruCache[tuple[str, str], tuple[ResolvedImage, float]] = LruCache(
            STYLE_RESOLVE_ENTRIES
        )

    async def _cached_answer(self, job: Job, *, bypass: bool, now: datetime) -> CacheEntry | None:
        """The owner's stored answer to this job, if the cache has one that still holds.

        An entry past its TTL, or whose result image storage no longer has for the owner,
        is a miss and is dropped.
        """
        policy = self._config.result_cache
        if not policy.enabled or job.cache_key is None:
            return None
        if bypass:
            job_metrics.RESULT_CACHE_REQUESTS.labels("bypass").inc()
            return None
        entry = await self.store.find_cache_entry(job.owner_id, job.cache_key)
        if entry is not None and entry.created_at < policy.fresh_since(now):
            await self._drop(entry, "expired")
            entry = None
        if entry is not None:
            try:
                await self._images.resolve_image(entry.result_image_id, job.owner_id)
            except (NotFound, FailedPrecondition):
                await self._drop(entry, "missing")
                entry = None
        job_metrics.RESULT_CACHE_REQUESTS.labels("miss" if entry is None else "hit").inc()
        return entry

    async def _drop(self, entry: CacheEntry, reason: str) -> None:
        """Deletes an entry that no longer answers, and counts why."""
        if await self.store.drop_cache_entry(entry):
            job_metrics.RESULT_CACHE_EVICTIONS.labels(reason).inc()
            logger.info(
                "result cache entry dropped",
                extra={"reason": reason, "source_job_id": entry.source_job_id},
            )

    async def _remember(self, uow: UnitOfWork, job: Job, now: datetime) -> None:
        """Stores a fresh result in the cache, in the transaction that records the success."""
        policy = self._config.result_cache
        entry = entry_for(job, now)
        if entry is None or not policy.enabled:
            return
        await uow.store_cache_entry(entry)

    async def _trim_cache_when_due(self, now: datetime) -> None:
        """Keeps the cache within its bounds, at most once per `trim_interval_s`.

        Trimming counts and scans the table; doing it with every stored result was a
        transaction and two table scans per job (loadtests/RESULTS.md). Between two trims
        the cache may hold up to one interval's worth of results over `max_entries`. A
        failure costs nothing but a later trim.
        """
        policy = self._config.result_cache
        tick = time.monotonic()
        if not policy.enabled or tick < self._next_cache_trim:
            return
        self._next_cache_trim = tick + policy.trim_interval_s
        try:
            async with self.store.transaction() as uow:
                expired, evicted = await uow.trim_cache(
                    max_entries=policy.max_entries, stale_before=policy.fresh_since(now)
                )
        except Exception:
            logger.warning("could not trim the result cache", exc_info=True)
            return
        if expired:
            job_metrics.RESULT_CACHE_EVICTIONS.labels("expired").inc(expired)
        if evicted:
            job_metrics.RESULT_CACHE_EVICTIONS.labels("capacity").inc(evicted)

    async def _resolve_images(
        self, request: JobRequest, owner: str
    ) -> tuple[ResolvedImage, tuple[ResolvedImage, ...]]:
        fields = ["content_url", *(f"style_urls[{i}]" for i in range(len(request.style_urls)))]
        results: Sequence[Any] = await asyncio.gather(
            self._images.resolve_image(request.content_url, owner),
            *(self._resolve_style(url, owner) for url in request.style_urls),
            return_exceptions=True,
        )
        for field, result in zip(fields, results, strict=True):
            if isinstance(result, BaseException):
                raise _about_field(result, field)
        return results[0], tuple(results[1:])

    async def _resolve_style(self, url: str, owner: str) -> ResolvedImage:
        """A style URL's image, asked of storage once per `style_resolve_ttl_s`.

        Clients send the same style with job after job while the content changes, and a
        stored image never changes: asking storage each time was a call and a database
        read per job. Only successful answers for this owner are kept, so access is
        still checked; an image deleted meanwhile fails the job when tiling loads it.
        """
        ttl = self._config.style_resolve_ttl_s
        now = time.monotonic()
        if ttl > 0:
            cached = self._styles.get((owner, url))
            if cached is not None and now < cached[1]:
                return cached[0]
        image = await self._images.resolve_image(url, owner)
        if ttl > 0:
            self._styles.put((owner, url), (image, now + ttl))
        return image
