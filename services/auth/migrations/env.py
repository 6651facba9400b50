"""Alembic environment of the auth schema: `python -m services.auth migrate` runs it."""

from gouache.db.migrate import run_env
from services.auth.store import AuthDatabase

run_env(AuthDatabase.migrations)
