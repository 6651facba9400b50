"""The audit log: security-relevant actions, append-only, readable by admins.

One table in auth (auth owns identities): auth appends its own actions (users created, API
keys created and revoked, accounts deleted) and other services append theirs through
RecordAuditEvents (deletions, erasures, admin reads of others' data), each event once by
its id. Append-only means the code has no update or delete of an entry, except one: when a
user is erased, the entries that name them as actor or subject are pseudonymised (the id
replaced by `erased:<sha256 prefix>`), so the log keeps what happened but not who. The
erasure is remembered by the SHA-256 of the id (`auth_erased_subjects`), because other
services report its own steps (images and feedback erased) after auth has deleted the
account: an event naming an erased user is recorded pseudonymised. Each append checks and
inserts in one transaction that an erasure of a user it names cannot interleave with
(SQLite takes the write lock up front; PostgreSQL takes a per-user advisory lock in both),
so whichever commits first, no entry keeps the id. A database role without UPDATE/DELETE
on this table would enforce it on PostgreSQL; SQLite has no roles, so there it rests on
the code alone.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from gouache.db import is_unique_violation, new_id, utc_now
from gouache.runtime.audit import pseudonym
from gouache.runtime.context import Principal
from gouache.runtime.errors import InvalidArgument
from services.auth.store import ACTION_CHARS as _ACTION
from services.auth.store import AuthDatabase, audit_table, erased_subjects

logger = logging.getLogger(__name__)

DEFAULT_PAGE = 50
MAX_PAGE = 100
_USER_TARGET = "user:"
_ERASED = "erased:"


@dataclass(frozen=True)
class AuditEvent:
    event_id: str
    at: datetime
    actor_id: str
    action: str
    target: str = ""
    subject_id: str = ""
    service: str = "auth"
    detail: str = ""


def _row(event: AuditEvent) -> dict[str, object]:
    return {
        "event_id": event.event_id,
        "at": event.at,
        "actor_id": event.actor_id[:128],
        "action": event.action,
        "target": event.target[:256],
        "subject_id": event.subject_id[:128],
        "service": event.service[:64],
        "detail": event.detail[:2000],
    }


def _event(row: object) -> AuditEvent:
    values = row._mapping  # type: ignore[attr-defined]
    return AuditEvent(**{key: values[key] for key in AuditEvent.__dataclass_fields__})


def _digest(user_id: str) -> str:
    return hashlib.sha256(user_id.encode()).hexdigest()


def _named_users(event: AuditEvent) -> set[str]:
    """The user ids an event names: its actor, its subject and a `user:` target."""
    target = event.target[len(_USER_TARGET) :] if event.target.startswith(_USER_TARGET) else ""
    return {
        name
        for name in (event.actor_id, event.subject_id, target)
        if name and not name.startswith(_ERASED)
    }


def _without(event: AuditEvent, erased: set[str]) -> AuditEvent:
    """The event with each erased user it names replaced by their pseudonym."""
    if not erased:
        return event

    def alias(name: str) -> str:
        return pseudonym(name) if name in erased else name

    target = event.target
    if target.startswith(_USER_TARGET):
        target = _USER_TARGET + alias(target[len(_USER_TARGET) :])
    return dataclasses.replace(
        event, actor_id=alias(event.actor_id), subject_id=alias(event.subject_id), target=target
    )


async def _serialise(session: AsyncSession, user_ids: set[str]) -> None:
    """On PostgreSQL, holds each user's erasure lock until the transaction ends.

    SQLite needs none: every write transaction there takes the database's write lock first.
    Locks are taken in one order so two transactions never wait on each other in a cycle.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    keys = sorted(
        int.from_bytes(
            hashlib.sha256(f"auth.erasure:{name}".encode()).digest()[:8], "big", signed=True
        )
        for name in user_ids
    )
    for key in keys:
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


async def _erased_among(session: AsyncSession, user_ids: set[str]) -> set[str]:
    if not user_ids:
        return set()
    by_digest = {_digest(name): name for name in user_ids}
    rows = await session.execute(
        select(erased_subjects.c.subject_sha256).where(
            erased_subjects.c.subject_sha256.in_(list(by_digest))
        )
    )
    return {by_digest[row[0]] for row in rows}


def _cursor(event: AuditEvent) -> str:
    raw = json.dumps([event.at.isoformat(), event.event_id]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _after(token: str) -> tuple[datetime, str]:
    try:
        at, event_id = json.loads(base64.urlsafe_b64decode(token.encode()))
        return datetime.fromisoformat(at), str(event_id)
    except (ValueError, TypeError):
        raise InvalidArgument(
            "page_token is not one this server handed out; start again without it",
            field="page_token",
        ) from None


class AuditLog:
    """Appends to and reads the audit log."""

    def __init__(self, database: AuthDatabase) -> None:
        self._db = database

    async def append(self, events: list[AuditEvent]) -> int:
        """Records each event once (an id seen before is skipped); returns how many new.

        An erased user the event names is recorded by their pseudonym (module doc).
        """
        recorded = 0
        for event in events:
            named = _named_users(event)
            try:
                async with self._db.sessions.begin() as session:
                    await _serialise(session, named)
                    erased = await _erased_among(session, named)
                    row = _row(_without(event, erased))
                    await session.execute(audit_table.insert().values(**row))
                recorded += 1
            except Exception as exc:
                if not is_unique_violation(exc):
                    raise
        return recorded

    async def record(
        self,
        actor: Principal,
        action: str,
        *,
        target: str = "",
        subject_id: str = "",
        detail: str = "",
    ) -> None:
        """Auth's own action, by the caller; a failure is logged, not raised (the action
        itself already happened)."""
        event = AuditEvent(
            event_id=new_id("aud"),
            at=utc_now(),
            actor_id=actor.user_id,
            action=action,
            target=target,
            subject_id=subject_id,
            detail=detail,
        )
        try:
            await self.append([event])
        except Exception:
            logger.exception("could not write the audit log", extra={"action": action})

    async def list(
        self,
        *,
        since: datetime | None,
        actor_id: str,
        action: str,
        page_size: int,
        page_token: str,
    ) -> tuple[list[AuditEvent], str]:
        if not 0 <= page_size <= MAX_PAGE:
            raise InvalidArgument(
                f"page_size must be within 1 and {MAX_PAGE} (0 means {DEFAULT_PAGE}), got {page_size}",
                field="page_size",
            )
        if len(action) > _ACTION:
            raise InvalidArgument(f"action is at most {_ACTION} characters", field="action")
        limit = page_size or DEFAULT_PAGE
        query = select(audit_table)
        if since is not None:
            query = query.where(audit_table.c.at >= since)
        if actor_id:
            query = query.where(audit_table.c.actor_id == actor_id)
        if action:
            query = query.where(audit_table.c.action == action)
        if page_token:
            at, event_id = _after(page_token)
            query = query.where(
                or_(
                    audit_table.c.at < at,
                    and_(audit_table.c.at == at, audit_table.c.event_id < event_id),
                )
            )
        query = query.order_by(audit_table.c.at.desc(), audit_table.c.event_id.desc())
        async with self._db.reads() as session:
            rows = list(await session.execute(query.limit(limit + 1)))
        events = [_event(row) for row in rows[:limit]]
        return events, _cursor(events[-1]) if len(rows) > limit else ""

    async def pseudonymise(self, user_id: str) -> None:
        """An erased user's entries keep what happened, not who (see the module's doc)."""
        alias = pseudonym(user_id)
        async with self._db.sessions.begin() as session:
            await _serialise(session, {user_id})
            if not await _erased_among(session, {user_id}):
                await session.execute(
                    insert(erased_subjects).values(
                        subject_sha256=_digest(user_id), erased_at=utc_now()
                    )
                )
            for column in (audit_table.c.actor_id, audit_table.c.subject_id):
                await session.execute(
                    update(audit_table).where(column == user_id).values({column.name: alias})
                )
            await session.execute(
                update(audit_table)
                .where(audit_table.c.target == f"user:{user_id}")
                .values(target=f"user:{alias}")
            )
