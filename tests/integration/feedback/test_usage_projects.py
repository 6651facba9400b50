"""Usage per project and user, on SQLite and PostgreSQL: who may read which project's,
and what a user's erasure leaves of the outcomes of the shared projects they worked in."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from gouache.db import create_engine
from gouache.runtime.context import Principal
from gouache.runtime.errors import InvalidArgument, PermissionDenied
from services.feedback.domain import ERASED_USER, FAILED, SUCCEEDED, FeedbackService, JobOutcome
from services.feedback.store import FeedbackDatabase
from services.feedback.usage import UsageQuery, UsageRecord

NOW = datetime(2030, 3, 4, 5, 6, 7, tzinfo=UTC)
TEAM = "prj_team"
OTHER = "prj_other"


@pytest.fixture
async def database(db_url: str) -> AsyncIterator[FeedbackDatabase]:
    database = FeedbackDatabase(create_engine(db_url))
    await database.create_schema()
    outcomes = [
        # Alice and Bob in the team's project, Alice alone in her personal one, Carol in
        # another project.
        JobOutcome("job_1", TEAM, "v1", SUCCEEDED, 10, NOW, compute_ms=1000, user_id="usr_a"),
        JobOutcome("job_2", TEAM, "v1", SUCCEEDED, 10, NOW, compute_ms=200, user_id="usr_b"),
        JobOutcome("job_3", TEAM, "v1", FAILED, 10, NOW, user_id="usr_b"),
        JobOutcome("job_4", "usr_a", "v1", SUCCEEDED, 10, NOW, compute_ms=30),
        JobOutcome("job_5", OTHER, "v1", SUCCEEDED, 10, NOW, compute_ms=4, user_id="usr_c"),
    ]
    for index, outcome in enumerate(outcomes):
        await database.record_outcome(outcome, event_id=f"evt_{index}", at=NOW)
    yield database
    await database.close()


def _rows(records: Sequence[UsageRecord]) -> list[tuple[str, str, int, int, int]]:
    return [
        (r.project_id, r.user_id, r.jobs_succeeded, r.jobs_failed, r.compute_ms) for r in records
    ]


async def test_usage_is_per_project_and_user(database: FeedbackDatabase) -> None:
    everyone = await database.usage(UsageQuery(user_id=None, since=None, until=None))
    assert _rows(everyone) == [
        (OTHER, "usr_c", 1, 0, 4),
        (TEAM, "usr_a", 1, 0, 1000),
        (TEAM, "usr_b", 1, 1, 200),
        ("usr_a", "usr_a", 1, 0, 30),
    ]
    team = await database.usage(UsageQuery(None, None, None, project_id=TEAM))
    assert _rows(team) == [(TEAM, "usr_a", 1, 0, 1000), (TEAM, "usr_b", 1, 1, 200)]
    alice = await database.usage(UsageQuery("usr_a", None, None))
    assert _rows(alice) == [(TEAM, "usr_a", 1, 0, 1000), ("usr_a", "usr_a", 1, 0, 30)]
    both = await database.usage(UsageQuery("usr_b", None, None, project_id=TEAM, group_by="day"))
    assert [(r.period, r.user_id, r.jobs_failed) for r in both] == [("2030-03-04", "usr_b", 1)]


def _member(user: str, project: str = "", role: str = "owner") -> Principal:
    return Principal(user_id=user, role="user", project=project, project_role=role)


async def test_who_reads_which_projects_usage(database: FeedbackDatabase) -> None:
    service = FeedbackService(database, clock=lambda: NOW + timedelta(days=1))
    admin = Principal(user_id="usr_admin", role="admin")
    assert _rows(await service.usage(admin, project_id=OTHER)) == [(OTHER, "usr_c", 1, 0, 4)]
    # The team's owner, acting in it, reads every member's usage, or one member's.
    owner = _member("usr_a", TEAM)
    assert [r.user_id for r in await service.usage(owner, project_id=TEAM)] == ["usr_a", "usr_b"]
    assert _rows(await service.usage(owner, project_id=TEAM, user_id="usr_b")) == [
        (TEAM, "usr_b", 1, 1, 200)
    ]
    # Without project_id, anyone reads the jobs they created, in every project.
    assert _rows(await service.usage(_member("usr_b", TEAM, "viewer"))) == [
        (TEAM, "usr_b", 1, 1, 200)
    ]
    # A token without a project acts in the personal project, whose owner the user is.
    assert _rows(await service.usage(_member("usr_a"), project_id="usr_a")) == [
        ("usr_a", "usr_a", 1, 0, 30)
    ]
    with pytest.raises(PermissionDenied, match="needs its owner role, and yours is editor") as e:
        await service.usage(_member("usr_b", TEAM, "editor"), project_id=TEAM)
    assert e.value.reason == "usage_needs_project_owner"
    with pytest.raises(PermissionDenied, match=f"acts in project {TEAM}, not {OTHER}") as e:
        await service.usage(owner, project_id=OTHER)
    assert e.value.reason == "usage_of_another_project"
    with pytest.raises(PermissionDenied, match="only admins may read another user's usage"):
        await service.usage(_member("usr_b", TEAM, "viewer"), user_id="usr_a")
    with pytest.raises(InvalidArgument, match="project_id must have at most 64") as bad:
        await service.usage(admin, project_id="p" * 65)
    assert bad.value.field == "project_id"


async def test_an_erased_members_shared_outcomes_stay_the_projects(
    database: FeedbackDatabase,
) -> None:
    service = FeedbackService(database, clock=lambda: NOW + timedelta(days=1))
    await service.erase_user("usr_a")
    everyone = await database.usage(UsageQuery(user_id=None, since=None, until=None))
    assert _rows(everyone) == [
        (ERASED_USER, ERASED_USER, 1, 0, 30),
        (OTHER, "usr_c", 1, 0, 4),
        (TEAM, ERASED_USER, 1, 0, 1000),
        (TEAM, "usr_b", 1, 1, 200),
    ]
    assert await database.usage(UsageQuery("usr_a", None, None)) == []


async def test_an_outcome_that_arrives_after_the_erasure_is_anonymised_too(
    database: FeedbackDatabase,
) -> None:
    # A job Alice created finished while her erasure ran; its event comes after.
    service = FeedbackService(database, clock=lambda: NOW + timedelta(days=1))
    await service.erase_user("usr_a")
    late = [
        JobOutcome("job_6", TEAM, "v1", SUCCEEDED, 10, NOW, compute_ms=7, user_id="usr_a"),
        JobOutcome("job_7", "usr_a", "v1", FAILED, 10, NOW, user_id="usr_a"),
        JobOutcome("job_8", TEAM, "v1", SUCCEEDED, 10, NOW, compute_ms=9, user_id="usr_b"),
    ]
    for index, outcome in enumerate(late):
        assert await database.record_outcome(outcome, event_id=f"evt_late_{index}", at=NOW)
    assert await database.usage(UsageQuery("usr_a", None, None)) == []
    team = await database.usage(UsageQuery(None, None, None, project_id=TEAM))
    assert _rows(team) == [(TEAM, ERASED_USER, 2, 0, 1007), (TEAM, "usr_b", 2, 1, 209)]
    personal = await database.outcome("job_7")
    assert personal is not None
    assert (personal.owner_id, personal.user_id) == (ERASED_USER,) * 2
    # Erasing again changes nothing and remembers the user once.
    assert await service.erase_user("usr_a") == (0, 0)
