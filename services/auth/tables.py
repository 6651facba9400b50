"""The auth tables: users, API keys, signing keys, projects and the audit log."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    ForeignKey,
    Index,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

from gouache.db import UtcDateTime, new_metadata
from gouache.runtime.context import DEFAULT_PLAN

# Plan names are short ("free", "pro", "enterprise": gouache.priority.TIERS).
PLAN_CHARS = 16

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
    # The personal project's plan (migration 0004; services/auth/domain/plans.py).
    Column("plan", String(PLAN_CHARS), nullable=False, server_default=DEFAULT_PLAN),
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


# Projects (services/auth/domain/projects.py; migration 0003). A personal project has no row:
# its id is its user's. created_by and added_by are not foreign keys: an erased user's id
# is replaced by a pseudonym there, and the project stays.
projects = Table(
    "auth_projects",
    metadata,
    Column("project_id", String(40), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("plan", String(PLAN_CHARS), nullable=False, server_default=DEFAULT_PLAN),
)

project_members = Table(
    "auth_project_members",
    metadata,
    Column("project_id", String(40), ForeignKey("auth_projects.project_id"), nullable=False),
    Column("user_id", String(40), ForeignKey("auth_users.user_id"), nullable=False),
    Column("role", String(16), nullable=False),
    Column("added_at", UtcDateTime(), nullable=False),
    Column("added_by", String(128), nullable=False),
    PrimaryKeyConstraint("project_id", "user_id", name="pk_auth_project_members"),
    Index("ix_auth_project_members_user_id", "user_id", "project_id"),
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


# Erased users, by the SHA-256 of their id (migration 0005): an audit event naming one that
# is reported after the erasure (storage's and feedback's own steps of it) is recorded
# pseudonymised, as the entries already there were.
erased_subjects = Table(
    "auth_erased_subjects",
    metadata,
    Column("subject_sha256", String(64), primary_key=True),
    Column("erased_at", UtcDateTime, nullable=False),
)
