"""Alembic environment of the feedback schema: `python -m services.feedback migrate` runs it."""

from gouache.db.migrate import run_env
from services.feedback.store import FeedbackDatabase

run_env(FeedbackDatabase.migrations)
