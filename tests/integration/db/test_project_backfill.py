"""The migrations that made jobs and usage per project keep the rows from before: every job
and job outcome gets its creator (user_id) from its owner, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gouache.db.migrate import current, differences, upgrade
from services.feedback.store import FeedbackDatabase, outcomes
from services.jobs.store import JobStore, jobs_table

AT = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


def _job(job_id: str, owner_id: str) -> dict[str, object]:
    return {
        "job_id": job_id,
        "owner_id": owner_id,
        "status": "succeeded",
        "requested_model_version": "default",
        "model_version": "gatys.lite0-v1",
        "content_url": "http://127.0.0.1:8080/v1/files/img_1",
        "content_image_id": "img_1",
        "style_urls": ["http://127.0.0.1:8080/v1/files/img_2"],
        "style_image_ids": ["img_2"],
        "params": {},
        "request_fingerprint": "f" * 64,
        "eta_seconds": 5,
        "progress": 1.0,
        "created_at": AT,
        "updated_at": AT,
    }


async def test_jobs_get_their_owner_as_creator(engine: AsyncEngine) -> None:
    migrations = JobStore.migrations
    await upgrade(engine, migrations, "0009")
    async with engine.begin() as connection:
        await connection.execute(
            insert(jobs_table).values([_job("job_1", "usr_1"), _job("job_2", "usr_2")])
        )

    await upgrade(engine, migrations)

    assert await current(engine, migrations) == migrations.head()
    assert await differences(engine, migrations) == []
    query = select(jobs_table.c.job_id, jobs_table.c.owner_id, jobs_table.c.user_id)
    async with engine.connect() as connection:
        rows = [tuple(row) for row in await connection.execute(query.order_by("job_id"))]
    assert rows == [("job_1", "usr_1", "usr_1"), ("job_2", "usr_2", "usr_2")]


async def test_outcomes_get_their_owner_as_creator(engine: AsyncEngine) -> None:
    migrations = FeedbackDatabase.migrations
    await upgrade(engine, migrations, "0005")
    async with engine.begin() as connection:
        await connection.execute(
            insert(outcomes).values(
                job_id="job_1",
                owner_id="usr_1",
                model_version="gatys.lite0-v1",
                status="succeeded",
                latency_ms=10,
                finished_at=AT,
                compute_ms=1500,
                event_id="evt_1",
                recorded_at=AT,
            )
        )

    await upgrade(engine, migrations)

    assert await differences(engine, migrations) == []
    database = FeedbackDatabase(engine)
    outcome = await database.outcome("job_1")
    assert outcome is not None
    assert (outcome.owner_id, outcome.user_id, outcome.compute_ms) == ("usr_1", "usr_1", 1500)
