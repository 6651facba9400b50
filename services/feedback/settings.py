"""Settings of the feedback service, read once from GOUACHE_FEEDBACK_* variables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from gouache.runtime.settings import ServiceSettings


class FeedbackSettings(ServiceSettings):
    """Where ratings and job outcomes live, and how job outcome events are consumed."""

    model_config = SettingsConfigDict(env_prefix="GOUACHE_FEEDBACK_", frozen=True, extra="ignore")

    port: int = 50056
    # Holds the SQLite database when database_url is not set.
    state_dir: Path = Path(".gouache/state")
    # sqlite+aiosqlite:///path.db (embedded) or postgresql+asyncpg://... (production).
    database_url: str = ""
    nats_url: str = "nats://127.0.0.1:4222"
    # Servers of the JetStream cluster that hold each stream (GOUACHE_FEEDBACK_STREAM_REPLICAS):
    # 3 in the Helm chart's three-node cluster, 1 for a single server.
    stream_replicas: int = Field(default=1, ge=1, le=5)
    # Durable JetStream consumer of gouache.jobs.succeeded and gouache.jobs.failed.
    consumer_name: str = "feedback"
    # Outcome events recorded at once.
    consumer_concurrency: int = Field(default=4, ge=1, le=64)
    # Deliveries of one event before it goes to the dead-letter stream GOUACHE_DLQ.
    consumer_max_deliver: int = Field(default=10, ge=1)
    # First and largest delay before a failed event is redelivered (doubling in between).
    consumer_retry_initial_s: float = Field(default=1.0, gt=0)
    consumer_retry_max_s: float = Field(default=60.0, gt=0)
    consumer_ack_wait_s: float = Field(default=30.0, gt=0)
    # Jobs, asked (with the caller's token) about a job rated before its outcome event came.
    jobs_addr: str = "127.0.0.1:50053"
    # How long such a rating waits for the outcome event of a job that has succeeded.
    outcome_wait_s: float = Field(default=10.0, ge=0, le=60)

    @model_validator(mode="before")
    @classmethod
    def _default_database_url(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("database_url"):
            state_dir = Path(data.get("state_dir") or Path(".gouache/state"))
            data = {**data, "database_url": f"sqlite+aiosqlite:///{state_dir}/feedback.db"}
        return data

    def sqlite_path(self) -> Path | None:
        """The SQLite file behind database_url, if it is one (its folder must exist)."""
        prefix = "sqlite+aiosqlite:///"
        if self.database_url.startswith(prefix):
            return Path(self.database_url[len(prefix) :])
        return None
