"""GetJob, ListJobs, WatchJob and WaitJob: what a caller reads of its jobs, each succeeded
job with a fresh signed URL of its result."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gouache.runtime.context import Principal
from gouache.runtime.errors import InvalidArgument, NotFound
from services.jobs.clients import DownloadSigner, ResultExpired
from services.jobs.domain.jobs import Job, JobStatus, parse_status
from services.jobs.domain.paging import PageCursor, check_id, page_size
from services.jobs.notifier import JobNotifier
from services.jobs.store import JobStore

if TYPE_CHECKING:
    from services.jobs.app import JobsConfig

logger = logging.getLogger(__name__)

# How many result URLs a list signs at once.
_SIGN_CONCURRENCY = 8
# WaitJob: the wait when a request names none, and the longest it may ask for (below the
# edge's 120 s request timeout).
DEFAULT_WAIT_S = 30.0
MAX_WAIT_S = 60.0


@dataclass(frozen=True)
class JobView:
    """A job and, once it succeeded, a fresh signed URL of its result (or why it is gone)."""

    job: Job
    result_url: str | None = None
    # The result's retention period ended: when (None if storage no longer knows).
    result_expired: ResultExpired | None = None


class JobReads:
    """JobsApp's reads of jobs (a mixin: JobsApp sets the attributes declared here)."""

    store: JobStore
    notifier: JobNotifier
    _downloads: DownloadSigner
    _config: JobsConfig

    @staticmethod
    def _visible(principal: Principal, job: Job) -> bool:
        return job.owner_id == principal.project_id or principal.is_admin or principal.is_service

    def _not_found(self, job_id: str) -> NotFound:
        return NotFound(f"job {job_id} not found", field="job_id")

    async def _view(self, job: Job) -> JobView:
        if job.status is not JobStatus.SUCCEEDED or not job.result_image_id:
            return JobView(job)
        try:
            url = await self._downloads.sign_download(
                job.result_image_id, self._config.download_url_ttl_s
            )
        except ResultExpired as expired:
            return JobView(job, result_expired=expired)
        except NotFound:
            logger.warning(
                "result image of a succeeded job is missing",
                extra={"job_id": job.job_id, "result_image_id": job.result_image_id},
            )
            return JobView(job)
        return JobView(job, url)

    async def get_job(self, principal: Principal, job_id: str) -> JobView:
        """One job the caller may see, with a fresh result URL once succeeded."""
        job_id = check_id(job_id, "job", field="job_id")
        job = await self.store.get_job(job_id)
        if job is None or not self._visible(principal, job):
            raise self._not_found(job_id)
        return await self._view(job)

    async def list_jobs(
        self, principal: Principal, *, size: int, page_token: str, status: str
    ) -> tuple[list[JobView], str]:
        """The jobs of the caller's project, newest first, and the next page's token ("" at end)."""
        limit = page_size(size)
        cursor = PageCursor.decode(page_token) if page_token else None
        wanted = parse_status(status) if status.strip() else None
        jobs = await self.store.list_jobs(
            principal.project_id, status=wanted, after=cursor, limit=limit + 1
        )
        more = len(jobs) > limit
        jobs = jobs[:limit]
        gate = asyncio.Semaphore(_SIGN_CONCURRENCY)

        async def view(job: Job) -> JobView:
            async with gate:
                return await self._view(job)

        views = list(await asyncio.gather(*(view(job) for job in jobs)))
        next_token = PageCursor(jobs[-1].created_at, jobs[-1].job_id).encode() if more else ""
        return views, next_token

    async def watch_job(self, principal: Principal, job_id: str) -> AsyncGenerator[JobView]:
        """The job now, then after each change, until it is final.

        Wakes on changes this replica makes and re-reads the job every
        watch_poll_interval_s for changes made by other replicas.
        """
        job_id = check_id(job_id, "job", field="job_id")
        with self.notifier.subscribe(job_id) as changed:
            last: tuple[object, ...] | None = None
            while True:
                changed.clear()
                job = await self.store.get_job(job_id)
                if job is None or not self._visible(principal, job):
                    raise self._not_found(job_id)
                marker = (job.status, job.progress, job.updated_at)
                if marker != last:
                    last = marker
                    yield await self._view(job)
                if job.status.is_final:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), self._config.watch_poll_interval_s)

    async def wait_job(self, principal: Principal, job_id: str, timeout_s: float) -> JobView:
        """The job once it is final, or as it is when timeout_s has passed (a long poll).

        The same wake-ups as watch_job: this replica's changes at once, other replicas'
        within watch_poll_interval_s.
        """
        if not 0 < timeout_s <= MAX_WAIT_S:
            raise InvalidArgument(
                f"timeout must be between 0 and {MAX_WAIT_S:.0f} s, got {timeout_s:g} s",
                field="timeout",
            )
        latest: JobView | None = None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                async with contextlib.aclosing(self.watch_job(principal, job_id)) as views:
                    async for view in views:
                        latest = view
        if latest is None:  # the timeout passed before the first read finished
            latest = await self.get_job(principal, job_id)
        return latest
