"""DeleteJob: a job goes with its result image, its deliveries and the cache entries that
would hand its result out again.

Order, so that a crash midway leaves nothing that points at something gone and a retried
DELETE finishes the work: (1) the cache entries go (a cache is always safe to drop) and we
learn whether any other job shares the result (a cache hit's job names its source's
image); (2) storage deletes the result image, unless it is shared (NOT_FOUND: it went in an
earlier try); (3) the deliveries and the job row go together. Between (2) and (3) the job
still exists without a result, which GetJob reports as it does for an expired one, until
the retry removes the row.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from datetime import datetime

from gouache.runtime.context import Principal
from gouache.runtime.errors import FailedPrecondition, NotFound
from services.jobs.clients import DownloadSigner
from services.jobs.domain.jobs import Job
from services.jobs.domain.paging import check_id
from services.jobs.store import JobStore
from services.jobs.store.removal import drop_job, forget_result

logger = logging.getLogger(__name__)


class JobRemoval:
    """JobsApp's DeleteJob (a mixin: JobsApp sets the attributes declared here)."""

    store: JobStore
    _downloads: DownloadSigner
    _now: Callable[[], datetime]

    async def delete_job(self, principal: Principal, job_id: str) -> Job:
        """Deletes a final job of the caller's (an admin: anyone's) and what it made."""
        job_id = check_id(job_id, "job", field="job_id")
        job = await self.store.get_job(job_id)
        if job is None or not (principal.is_admin or job.owner_id == principal.project_id):
            raise NotFound(f"job {job_id} not found")
        if not job.status.is_final:
            raise FailedPrecondition(
                f"job {job_id} is {job.status.value}: cancel it first "
                f"(POST /v1/jobs/{job_id}:cancel), then delete it",
                reason="job_not_final",
            )
        await self.remove_job(job)
        logger.info(
            "job deleted",
            extra={"job_id": job_id, "owner_id": job.owner_id, "by": principal.user_id},
        )
        return job

    async def remove_job(self, job: Job) -> None:
        """Removes a job and what only it uses (idempotent: safe to run again)."""
        if await forget_result(self.store, job.job_id, job.result_image_id or ""):
            # NOT_FOUND: deleted by an earlier try, or expired and forgotten.
            with contextlib.suppress(NotFound):
                await self._downloads.delete_image(job.result_image_id or "")
        await drop_job(self.store, job.job_id)
