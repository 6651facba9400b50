"""The audit log on SQLite and PostgreSQL: each event once, newest first, filters, pages, a
bad page token, and an erased user's entries pseudonymised."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from gouache.db import create_engine
from gouache.runtime.audit import pseudonym
from gouache.runtime.context import Principal
from gouache.runtime.errors import InvalidArgument
from services.auth.audit import AuditEvent, AuditLog
from services.auth.store import AuthDatabase

T0 = datetime(2026, 3, 1, tzinfo=UTC)
ADMIN = Principal(user_id="usr_root", role="admin")


@pytest.fixture
async def audit(db_url: str) -> AsyncIterator[AuditLog]:
    database = AuthDatabase(create_engine(db_url))
    await database.create_schema()
    try:
        yield AuditLog(database)
    finally:
        await database.close()


def _event(n: int, actor: str = "usr_root", action: str = "job.deleted") -> AuditEvent:
    return AuditEvent(
        event_id=f"aud_{n:04d}",
        at=T0 + timedelta(minutes=n),
        actor_id=actor,
        action=action,
        target=f"job:job_{n}",
        subject_id="usr_alice",
        service="usr_svc_jobs",
    )


async def test_each_event_once_newest_first_filtered_and_paged(audit: AuditLog) -> None:
    events = [_event(n) for n in range(5)] + [_event(9, actor="usr_bob", action="image.deleted")]
    assert await audit.append(events) == 6
    assert await audit.append(events[:2]) == 0  # a retried report records nothing twice

    everything, token = await audit.list(
        since=None, actor_id="", action="", page_size=0, page_token=""
    )
    assert [e.event_id for e in everything] == [
        "aud_0009",
        "aud_0004",
        "aud_0003",
        "aud_0002",
        "aud_0001",
        "aud_0000",
    ]
    assert token == ""
    bobs, _ = await audit.list(
        since=None, actor_id="usr_bob", action="", page_size=0, page_token=""
    )
    assert [e.action for e in bobs] == ["image.deleted"]
    recent, _ = await audit.list(
        since=T0 + timedelta(minutes=3),
        actor_id="",
        action="job.deleted",
        page_size=0,
        page_token="",
    )
    assert [e.event_id for e in recent] == ["aud_0004", "aud_0003"]

    seen: list[str] = []
    token = ""
    while True:
        page, token = await audit.list(
            since=None, actor_id="", action="", page_size=4, page_token=token
        )
        seen += [e.event_id for e in page]
        if not token:
            break
    assert seen == [e.event_id for e in everything]

    with pytest.raises(InvalidArgument, match="page_token"):
        await audit.list(since=None, actor_id="", action="", page_size=0, page_token="nope")
    with pytest.raises(InvalidArgument, match="page_size"):
        await audit.list(since=None, actor_id="", action="", page_size=101, page_token="")


async def test_an_erased_users_entries_keep_what_not_who(audit: AuditLog) -> None:
    await audit.record(ADMIN, "user.created", target="user:usr_alice", subject_id="usr_alice")
    await audit.record(
        Principal(user_id="usr_alice", role="user"), "api_key.created", subject_id="usr_alice"
    )
    await audit.pseudonymise("usr_alice")
    entries, _ = await audit.list(since=None, actor_id="", action="", page_size=0, page_token="")
    alias = pseudonym("usr_alice")
    assert {(e.action, e.actor_id, e.target, e.subject_id) for e in entries} == {
        ("user.created", "usr_root", f"user:{alias}", alias),
        ("api_key.created", alias, "", alias),
    }


async def test_an_event_naming_an_erased_user_that_arrives_later_is_recorded_pseudonymised(
    audit: AuditLog,
) -> None:
    """Other services report the erasure's own steps (images, feedback) after auth has
    deleted the account; their events must not bring the user's id back."""
    await audit.pseudonymise("usr_alice")
    late = AuditEvent(
        event_id="aud_late",
        at=T0,
        actor_id="usr_alice",
        action="image.erased",
        target="user:usr_alice",
        subject_id="usr_alice",
        service="usr_svc_storage",
    )
    other = _event(1, actor="usr_bob")
    assert await audit.append([late, other]) == 2
    assert await audit.append([late]) == 0  # a retried report is still recorded once
    entries, _ = await audit.list(since=None, actor_id="", action="", page_size=0, page_token="")
    alias = pseudonym("usr_alice")
    assert {(e.event_id, e.actor_id, e.target, e.subject_id) for e in entries} == {
        ("aud_late", alias, f"user:{alias}", alias),
        ("aud_0001", "usr_bob", "job:job_1", alias),
    }
    assert "usr_alice" not in repr(entries)


async def test_events_racing_an_erasure_never_keep_the_users_id(audit: AuditLog) -> None:
    """Appends that run while the erasure does end pseudonymised whichever commits first."""
    events = [_event(n, actor="usr_alice") for n in range(40)]
    await asyncio.gather(
        *(audit.append([event]) for event in events[:20]),
        audit.pseudonymise("usr_alice"),
        *(audit.append([event]) for event in events[20:]),
    )
    entries, _ = await audit.list(since=None, actor_id="", action="", page_size=100, page_token="")
    assert len(entries) == 40
    assert {e.actor_id for e in entries} == {pseudonym("usr_alice")}
    assert {e.subject_id for e in entries} == {pseudonym("usr_alice")}
