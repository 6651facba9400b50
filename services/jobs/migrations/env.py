"""Alembic environment of the jobs schema: `python -m services.jobs migrate` runs it."""

from gouache.db.migrate import run_env
from services.jobs.store import JobStore

run_env(JobStore.migrations)
