"""Alembic environment of the storage schema: `python -m services.storage migrate` runs it."""

from gouache.db.migrate import run_env
from services.storage.store import StorageStore

run_env(StorageStore.migrations)
