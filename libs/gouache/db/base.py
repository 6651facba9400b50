"""Per-service table metadata with one constraint naming convention for every service."""

from __future__ import annotations

from sqlalchemy import MetaData

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_metadata() -> MetaData:
    """Return a fresh MetaData for one service's tables.

    Each service owns its tables, so there is no shared declarative base: a service declares
    ``class Base(DeclarativeBase): metadata = new_metadata()`` (or passes the MetaData to
    ``Table``/``outbox_table``) and creates exactly its own schema. The naming convention
    gives constraints and indexes stable names, which migrations need to alter or drop them.
    """
    return MetaData(naming_convention=NAMING_CONVENTION)
