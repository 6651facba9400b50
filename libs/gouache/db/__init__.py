"""Database layer: async engines for SQLite and PostgreSQL, migrations, portable types, ids."""

from gouache.db.base import NAMING_CONVENTION, new_metadata
from gouache.db.database import ServiceDatabase
from gouache.db.engine import create_all, create_engine, read_only, session_factory
from gouache.db.errors import is_unique_violation
from gouache.db.ids import id_timestamp, new_id
from gouache.db.migrate import Migrations, SchemaMismatch
from gouache.db.types import PortableJSON, UtcDateTime, utc_now

__all__ = [
    "NAMING_CONVENTION",
    "Migrations",
    "PortableJSON",
    "SchemaMismatch",
    "ServiceDatabase",
    "UtcDateTime",
    "create_all",
    "create_engine",
    "id_timestamp",
    "is_unique_violation",
    "new_id",
    "new_metadata",
    "read_only",
    "session_factory",
    "utc_now",
]
