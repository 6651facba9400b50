"""A job row and its JobCreated event commit together or not at all, on SQLite and PostgreSQL.

Failures are injected in the database itself: a trigger that refuses inserts into one of
the two tables. Whichever write fails, the other must not survive; a create_job that
commits them in two transactions leaves one behind and fails here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from gouache.runtime.context import Principal
from services.jobs.app import JobsApp
from services.jobs.domain.requests import JobRequest
from services.jobs.store import jobs_table, outbox
from tests.unit.jobs.conftest import make_app
from tests.unit.jobs.helpers import InMemoryImages

ALICE = Principal(user_id="usr_alice", role="user")
INJECTED = "injected failure"


@pytest.fixture
def images() -> InMemoryImages:
    return InMemoryImages()


@pytest.fixture
async def app(db_url: str, images: InMemoryImages) -> AsyncIterator[JobsApp]:
    app = await make_app(db_url, images)
    try:
        yield app
    finally:
        await app.store.close()


async def _refuse_inserts(app: JobsApp, table: str) -> None:
    """Make every INSERT into table fail inside the database, as a full disk or a
    constraint would."""
    async with app.store.sessions.begin() as session:
        if session.get_bind().dialect.name == "sqlite":
            await session.execute(
                text(
                    f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{INJECTED}'); END"
                )
            )
            return
        await session.execute(
            text(
                f"CREATE FUNCTION refuse_{table}() RETURNS trigger LANGUAGE plpgsql AS "
                f"$$ BEGIN RAISE EXCEPTION '{INJECTED}'; END $$"
            )
        )
        await session.execute(
            text(
                f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION refuse_{table}()"
            )
        )


async def _counts(app: JobsApp) -> tuple[int, int]:
    async with app.store.sessions() as session:
        jobs = (await session.execute(select(func.count()).select_from(jobs_table))).scalar_one()
        events = (await session.execute(select(func.count()).select_from(outbox))).scalar_one()
    return int(jobs), int(events)


def _request(images: InMemoryImages) -> JobRequest:
    return JobRequest(content_url=images.add("usr_alice"), style_urls=(images.add(None),))


async def test_both_are_written_when_nothing_fails(app: JobsApp, images: InMemoryImages) -> None:
    await app.create_job(ALICE, _request(images))
    assert await _counts(app) == (1, 1)


@pytest.mark.parametrize("failing", ["outbox", "jobs"])
async def test_when_either_write_fails_neither_is_stored(
    app: JobsApp, images: InMemoryImages, failing: str
) -> None:
    await _refuse_inserts(app, failing)

    with pytest.raises(DBAPIError, match=INJECTED):
        await app.create_job(ALICE, _request(images))

    assert await _counts(app) == (0, 0)


async def test_with_an_idempotency_key_neither_is_stored_either(
    app: JobsApp, images: InMemoryImages
) -> None:
    await _refuse_inserts(app, "outbox")

    with pytest.raises(DBAPIError, match=INJECTED):
        await app.create_job(ALICE, _request(images), header_key="k-1")

    assert await _counts(app) == (0, 0)
