"""The auth tables (users, API keys, signing keys) and their adapter over SQLAlchemy."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from sqlalchemy import (
    Boolean,
    Column,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError

from gouache.db import (
    Migrations,
    ServiceDatabase,
    UtcDateTime,
    is_unique_violation,
    new_metadata,
)
from gouache.runtime.errors import AlreadyExists
from services.auth.domain import ApiKeyRecord, User
from services.auth.keys import StoredSigningKey

metadata = new_metadata()

users = Table(
    "auth_users",
    metadata,
    Column("user_id", String(40), primary_key=True),
    Column("email", String(254), nullable=False, unique=True),
    Column("name", String(200), nullable=False, default=""),
    Column("role", String(16), nullable=False),
    # NULL for accounts that sign in only with API keys (service accounts).
    Column("password_hash", String(200), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
)

api_keys = Table(
    "auth_api_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("user_id", String(40), ForeignKey("auth_users.user_id"), nullable=False),
    Column("name", String(100), nullable=False, default=""),
    # SHA-256 (hex) of the secret; the secret itself is never stored.
    Column("secret_hash", String(64), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("revoked_at", UtcDateTime(), nullable=True),
    Index("ix_auth_api_keys_user_id_created_at", "user_id", "created_at"),
)

signing_keys = Table(
    "auth_signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    # PKCS#8 PEM, encrypted with the configured passphrase when `encrypted`.
    Column("private_pem", LargeBinary, nullable=False),
    Column("encrypted", Boolean, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("retired_at", UtcDateTime(), nullable=True),
)


def _user(row: RowMapping) -> User:
    return User(
        user_id=row["user_id"],
        email=row["email"],
        name=row["name"],
        role=row["role"],
        password_hash=row["password_hash"],
        created_at=row["created_at"],
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


# The audit log (services/auth/audit.py; migration 0002): appended to, never changed except
# to pseudonymise an erased user.
ACTION_CHARS = 64
audit_table = Table(
    "auth_audit_log",
    metadata,
    Column("event_id", String(64), primary_key=True),
    Column("at", UtcDateTime, nullable=False),
    Column("actor_id", String(128), nullable=False),
    Column("action", String(ACTION_CHARS), nullable=False),
    Column("target", String(256), nullable=False),
    Column("subject_id", String(128), nullable=False),
    Column("service", String(64), nullable=False),
    Column("detail", Text, nullable=False),
    Index("ix_auth_audit_log_at_event_id", "at", "event_id"),
    Index("ix_auth_audit_log_actor_id", "actor_id"),
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

    async def delete_account(self, user_id: str) -> tuple[bool, int]:
        """Deletes the user's API keys, then the user, in one transaction."""
        async with self.sessions.begin() as session:
            keys = await session.execute(delete(api_keys).where(api_keys.c.user_id == user_id))
            user = await session.execute(delete(users).where(users.c.user_id == user_id))
        return (
            bool(getattr(user, "rowcount", 0)),
            int(getattr(keys, "rowcount", 0) or 0),
        )

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
