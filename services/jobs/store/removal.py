"""The rows a deleted job leaves behind: its deliveries, the cache entries that hand out its
result, and the job itself (used by removal_app.JobRemoval)."""

from __future__ import annotations

from sqlalchemy import delete, func, or_, select

from services.jobs.store.database import JobStore
from services.jobs.store.tables import deliveries_table, jobs_table, result_cache_table


async def forget_result(store: JobStore, job_id: str, result_image_id: str) -> bool:
    """Drops every cache entry that hands out the job's result or came from the job;
    True when no other job names that result image (so it may be deleted from storage)."""
    async with store.transaction() as uow:
        await uow.session.execute(
            delete(result_cache_table).where(
                or_(
                    result_cache_table.c.source_job_id == job_id,
                    result_cache_table.c.result_image_id == result_image_id,
                )
                if result_image_id
                else result_cache_table.c.source_job_id == job_id
            )
        )
        if not result_image_id:
            return False
        others = await uow.session.execute(
            select(func.count()).where(
                jobs_table.c.result_image_id == result_image_id, jobs_table.c.job_id != job_id
            )
        )
        return int(others.scalar_one()) == 0


async def drop_job(store: JobStore, job_id: str) -> bool:
    """Deletes the job's deliveries and the job; False when it was already gone."""
    async with store.transaction() as uow:
        await uow.session.execute(
            delete(deliveries_table).where(deliveries_table.c.job_id == job_id)
        )
        result = await uow.session.execute(delete(jobs_table).where(jobs_table.c.job_id == job_id))
    return bool(getattr(result, "rowcount", 0))
