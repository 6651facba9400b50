"""Plan quotas at job creation: the project's compute this month against the caller's plan's
quota (a user's personal project is theirs alone)."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from gouache.priority import tier_of
from gouache.runtime.context import Principal
from services.jobs.domain.jobs import Job
from services.jobs.domain.quota import QuotaPolicy, check_compute, month_of
from services.jobs.store import JobStore
from services.jobs.store.usage import add_compute, compute_used_ms

logger = logging.getLogger(__name__)


class QuotaGate:
    """Refuses new work in a project whose monthly compute is used up (under the plan of the
    caller's token).

    Reads the owner's counter (one row by primary key) only for callers with a finite
    quota; enterprise (unlimited by default), admins and services cost no read.
    """

    def __init__(self, store: JobStore, policy: QuotaPolicy) -> None:
        self._store = store
        self._policy = policy

    async def check(self, principal: Principal, now: datetime) -> None:
        """RESOURCE_EXHAUSTED (quota_exceeded) once the month's compute reaches the quota."""
        limit_s = self._policy.limit_s(principal)
        if limit_s is None:
            return
        async with self._store.reads() as session:
            used_ms = await compute_used_ms(
                session, owner_id=principal.project_id, month=month_of(now)
            )
        try:
            check_compute(tier_of(principal.plan), limit_s, used_ms, now)
        except Exception:
            logger.info(
                "job refused: compute quota used",
                extra={"owner_id": principal.project_id, "used_ms": used_ms, "quota_s": limit_s},
            )
            raise

    async def count(self, session: AsyncSession, job: Job, now: datetime) -> None:
        """Adds a job that just succeeded to its owner's month, in the success's transaction
        (one statement: the hot path keeps its single transaction)."""
        await add_compute(
            session, owner_id=job.owner_id, month=month_of(now), compute_ms=job.compute_ms, at=now
        )
