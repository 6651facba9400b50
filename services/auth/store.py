"""The auth store: users, API keys, signing keys, projects and plans over SQLAlchemy (the
tables are in services/auth/tables.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gouache.db import Migrations, ServiceDatabase, is_unique_violation
from gouache.runtime.audit import pseudonym
from gouache.runtime.errors import AlreadyExists, NotFound
from services.auth.domain import ApiKeyRecord, DeletedAccount, User
from services.auth.domain.projects import Member, MemberChange, MemberCheck, Project
from services.auth.keys import StoredSigningKey
from services.auth.tables import (
    ACTION_CHARS,
    api_keys,
    audit_table,
    erased_subjects,
    metadata,
    project_members,
    projects,
    signing_keys,
    users,
)

__all__ = [
    "ACTION_CHARS",
    "AuthDatabase",
    "api_keys",
    "audit_table",
    "erased_subjects",
    "metadata",
    "project_members",
    "projects",
    "signing_keys",
    "users",
]


def _project(row: RowMapping) -> Project:
    return Project(
        project_id=row["project_id"],
        name=row["name"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        plan=row["plan"],
    )


def _member(row: RowMapping) -> Member:
    return Member(
        project_id=row["project_id"],
        user_id=row["user_id"],
        role=row["role"],
        added_at=row["added_at"],
        added_by=row["added_by"],
        email=row["email"],
    )


_MEMBER_COLUMNS = (*project_members.c, users.c.email)


def _user(row: RowMapping) -> User:
    return User(
        user_id=row["user_id"],
        email=row["email"],
        name=row["name"],
        role=row["role"],
        password_hash=row["password_hash"],
        created_at=row["created_at"],
        plan=row["plan"],
    )


def _key(row: RowMapping) -> ApiKeyRecord:
    return ApiKeyRecord(
        key_id=row["key_id"],
        user_id=row["user_id"],
        name=row["name"],
        secret_hash=row["secret_hash"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )


class AuthDatabase(ServiceDatabase):
    """Users, API keys and signing keys in one SQLite or PostgreSQL database."""

    migrations = Migrations("auth", Path(__file__).with_name("migrations"), metadata)

    async def add_user(self, user: User) -> None:
        """Inserts a user; AlreadyExists when the email is taken."""
        try:
            async with self.sessions.begin() as session:
                await session.execute(
                    insert(users).values(
                        user_id=user.user_id,
                        email=user.email,
                        name=user.name,
                        role=user.role,
                        password_hash=user.password_hash,
                        created_at=user.created_at,
                        plan=user.plan,
                    )
                )
        except IntegrityError as exc:
            if is_unique_violation(exc):
                raise AlreadyExists(
                    f"a user with email {user.email} already exists", reason="email_taken"
                ) from exc
            raise

    async def user_by_id(self, user_id: str) -> User | None:
        async with self.reads() as session:
            row = (
                (await session.execute(select(users).where(users.c.user_id == user_id)))
                .mappings()
                .first()
            )
        return _user(row) if row else None

    async def user_by_email(self, email: str) -> User | None:
        async with self.reads() as session:
            row = (
                (await session.execute(select(users).where(users.c.email == email)))
                .mappings()
                .first()
            )
        return _user(row) if row else None

    async def add_api_key(self, key: ApiKeyRecord) -> None:
        async with self.sessions.begin() as session:
            await session.execute(
                insert(api_keys).values(
                    key_id=key.key_id,
                    user_id=key.user_id,
                    name=key.name,
                    secret_hash=key.secret_hash,
                    created_at=key.created_at,
                    revoked_at=key.revoked_at,
                )
            )

    async def api_key(self, key_id: str) -> ApiKeyRecord | None:
        async with self.reads() as session:
            row = (
                (await session.execute(select(api_keys).where(api_keys.c.key_id == key_id)))
                .mappings()
                .first()
            )
        return _key(row) if row else None

    async def api_keys_of(self, user_id: str) -> list[ApiKeyRecord]:
        async with self.reads() as session:
            rows = (
                (
                    await session.execute(
                        select(api_keys)
                        .where(api_keys.c.user_id == user_id)
                        .order_by(api_keys.c.created_at, api_keys.c.key_id)
                    )
                )
                .mappings()
                .all()
            )
        return [_key(row) for row in rows]

    async def revoke_api_key(self, key_id: str, at: datetime) -> None:
        async with self.sessions.begin() as session:
            await session.execute(
                update(api_keys)
                .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=at)
            )

    async def delete_account(self, user_id: str) -> DeletedAccount:
        """Deletes the user's API keys and project memberships, then the user, in one
        transaction; where the user created a project or added a member, their id becomes
        a pseudonym (the projects stay: they belong to their members)."""
        alias = pseudonym(user_id)
        async with self.sessions.begin() as session:
            keys = await session.execute(delete(api_keys).where(api_keys.c.user_id == user_id))
            memberships = await session.execute(
                delete(project_members).where(project_members.c.user_id == user_id)
            )
            await session.execute(
                update(projects).where(projects.c.created_by == user_id).values(created_by=alias)
            )
            await session.execute(
                update(project_members)
                .where(project_members.c.added_by == user_id)
                .values(added_by=alias)
            )
            user = await session.execute(delete(users).where(users.c.user_id == user_id))
        return DeletedAccount(
            deleted=bool(getattr(user, "rowcount", 0)),
            api_keys=int(getattr(keys, "rowcount", 0) or 0),
            memberships=int(getattr(memberships, "rowcount", 0) or 0),
        )

    # -- projects (services.auth.domain.projects.ProjectStore) -----------------------------

    async def add_project(self, project: Project, owner: Member) -> None:
        async with self.sessions.begin() as session:
            await session.execute(
                insert(projects).values(
                    project_id=project.project_id,
                    name=project.name,
                    created_by=project.created_by,
                    created_at=project.created_at,
                    plan=project.plan,
                )
            )
            await session.execute(insert(project_members).values(**_member_values(owner)))

    async def project(self, project_id: str) -> Project | None:
        async with self.reads() as session:
            row = (
                (await session.execute(select(projects).where(projects.c.project_id == project_id)))
                .mappings()
                .first()
            )
        return _project(row) if row else None

    async def member(self, project_id: str, user_id: str) -> Member | None:
        query = (
            select(*_MEMBER_COLUMNS)
            .join(users, users.c.user_id == project_members.c.user_id)
            .where(project_members.c.project_id == project_id)
            .where(project_members.c.user_id == user_id)
        )
        async with self.reads() as session:
            row = (await session.execute(query)).mappings().first()
        return _member(row) if row else None

    async def members(self, project_id: str) -> list[Member]:
        async with self.reads() as session:
            return await _members(session, project_id)

    async def projects_of(
        self, user_id: str, *, after: str, limit: int
    ) -> list[tuple[Project, str]]:
        query = (
            select(projects, project_members.c.role)
            .join(project_members, project_members.c.project_id == projects.c.project_id)
            .where(project_members.c.user_id == user_id, projects.c.project_id > after)
            .order_by(projects.c.project_id)
            .limit(limit)
        )
        async with self.reads() as session:
            rows = (await session.execute(query)).mappings().all()
        return [(_project(row), row["role"]) for row in rows]

    async def all_projects(self, *, after: str, limit: int) -> list[Project]:
        query = (
            select(projects)
            .where(projects.c.project_id > after)
            .order_by(projects.c.project_id)
            .limit(limit)
        )
        async with self.reads() as session:
            rows = (await session.execute(query)).mappings().all()
        return [_project(row) for row in rows]

    async def user_brief(self, user_id: str) -> tuple[str, datetime, str] | None:
        query = select(users.c.email, users.c.created_at, users.c.plan).where(
            users.c.user_id == user_id
        )
        async with self.reads() as session:
            row = (await session.execute(query)).first()
        return (row[0], row[1], row[2]) if row else None

    # -- plans (services.auth.domain.plans.PlanStore) --------------------------------------

    async def set_user_plan(self, user_id: str, plan: str) -> str | None:
        return await _set_plan(self, users, "user_id", user_id, plan)

    async def set_project_plan(self, project_id: str, plan: str) -> str | None:
        return await _set_plan(self, projects, "project_id", project_id, plan)

    async def put_member(self, member: Member, check: MemberCheck) -> MemberChange:
        """Adds the member or changes their role (keeping when and by whom they were
        added), after check(members) passed on the members read with the project row
        locked, so two owners demoting each other at once cannot leave none."""
        async with self.sessions.begin() as session:
            current = await _locked_members(session, member.project_id)
            check(current)
            before = next((m for m in current if m.user_id == member.user_id), None)
            if before is None:
                await session.execute(insert(project_members).values(**_member_values(member)))
                return MemberChange(member=member, previous_role="")
            await session.execute(
                update(project_members)
                .where(
                    project_members.c.project_id == member.project_id,
                    project_members.c.user_id == member.user_id,
                )
                .values(role=member.role)
            )
        kept = Member(
            before.project_id,
            before.user_id,
            member.role,
            before.added_at,
            before.added_by,
            before.email,
        )
        return MemberChange(member=kept, previous_role=before.role)

    async def remove_member(self, project_id: str, user_id: str, check: MemberCheck) -> bool:
        async with self.sessions.begin() as session:
            current = await _locked_members(session, project_id)
            if all(m.user_id != user_id for m in current):
                return False
            check(current)
            await session.execute(
                delete(project_members).where(
                    project_members.c.project_id == project_id,
                    project_members.c.user_id == user_id,
                )
            )
        return True

    async def signing_keys(self) -> list[StoredSigningKey]:
        async with self.reads() as session:
            rows = (
                (await session.execute(select(signing_keys).order_by(signing_keys.c.created_at)))
                .mappings()
                .all()
            )
        return [
            StoredSigningKey(
                kid=row["kid"],
                private_pem=bytes(row["private_pem"]),
                encrypted=bool(row["encrypted"]),
                created_at=row["created_at"],
                retired_at=row["retired_at"],
            )
            for row in rows
        ]

    async def add_signing_key(self, key: StoredSigningKey) -> None:
        async with self.sessions.begin() as session:
            await session.execute(
                insert(signing_keys).values(
                    kid=key.kid,
                    private_pem=key.private_pem,
                    encrypted=key.encrypted,
                    created_at=key.created_at,
                    retired_at=key.retired_at,
                )
            )

    async def retire_signing_keys(self, kids: Sequence[str], at: datetime) -> None:
        async with self.sessions.begin() as session:
            await session.execute(
                update(signing_keys)
                .where(signing_keys.c.kid.in_(list(kids)), signing_keys.c.retired_at.is_(None))
                .values(retired_at=at)
            )


def _member_values(member: Member) -> dict[str, object]:
    return {
        "project_id": member.project_id,
        "user_id": member.user_id,
        "role": member.role,
        "added_at": member.added_at,
        "added_by": member.added_by,
    }


async def _members(session: AsyncSession, project_id: str) -> list[Member]:
    query = (
        select(*_MEMBER_COLUMNS)
        .join(users, users.c.user_id == project_members.c.user_id)
        .where(project_members.c.project_id == project_id)
        .order_by(project_members.c.added_at, project_members.c.user_id)
    )
    return [_member(row) for row in (await session.execute(query)).mappings().all()]


async def _locked_members(session: AsyncSession, project_id: str) -> list[Member]:
    """The project's members, its row locked for the transaction (FOR UPDATE on
    PostgreSQL; SQLite has one writer at a time anyway); NOT_FOUND without the project."""
    locked = await session.execute(
        select(projects.c.project_id).where(projects.c.project_id == project_id).with_for_update()
    )
    if locked.first() is None:
        raise NotFound(f"no project {project_id}", reason="project_not_found")
    return await _members(session, project_id)


async def _set_plan(
    database: AuthDatabase, table: Table, key_column: str, value: str, plan: str
) -> str | None:
    """Sets one row's plan, its previous plan read under a row lock in the same transaction
    (so two admins' changes audit as a chain); None when there is no such row."""
    key = table.c[key_column]
    async with database.sessions.begin() as session:
        row = (
            await session.execute(select(table.c.plan).where(key == value).with_for_update())
        ).first()
        if row is None:
            return None
        await session.execute(update(table).where(key == value).values(plan=plan))
    return str(row[0])
