"""Settings of the jobs service, read once from GOUACHE_JOBS_* variables."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from gouache import catalogue
from gouache.runtime.settings import ServiceSettings
from gouache.secretbox import SecretBox, generate_key
from services.jobs.domain.quota import DEFAULT_COMPUTE_QUOTAS_S, check_quotas

# The catalogue's shipped versions (encoder as the engine's key, e.g. "lite0") and aliases.
DEFAULT_SEED_MODELS: dict[str, Any] = catalogue.jobs_seed()


def _default_state_dir() -> Path:
    return Path.home() / ".local" / "state" / "gouache"


class JobsSettings(ServiceSettings):
    """Where jobs live, whom jobs talks to, and the limits it enforces."""

    model_config = SettingsConfigDict(env_prefix="GOUACHE_JOBS_", frozen=True, extra="ignore")

    port: int = 50053
    # Directory for the embedded default database.
    state_dir: Path = _default_state_dir()
    # Default: sqlite+aiosqlite:///<state_dir>/jobs.db.
    database_url: str = ""
    nats_url: str = "nats://127.0.0.1:4222"
    # Servers of the JetStream cluster that hold each stream (GOUACHE_JOBS_STREAM_REPLICAS):
    # 3 in the Helm chart's three-node cluster, 1 for a single server.
    stream_replicas: int = Field(default=1, ge=1, le=5)
    # The storage service (ResolveImageUrl, SignDownload).
    storage_addr: str = "127.0.0.1:50052"
    # An idempotency key returns the same job for this long; after it, it may be reused.
    idempotency_ttl_s: int = Field(default=24 * 3600, ge=1)
    # Lifetime of the signed result URLs in GetJob, ListJobs and WatchJob.
    download_url_ttl_s: int = Field(default=3600, ge=60, le=7 * 24 * 3600)
    # WatchJob and WaitJob re-read the job this often, to see progress made by other
    # replicas (their final states wake watchers at once, through the bus).
    watch_poll_interval_s: float = Field(default=2.0, gt=0)
    # A preview job (CreateJobRequest.lane "preview"): the longest side of its output, and
    # the model it runs when the requested one optimises (gatys).
    preview_max_side: int = Field(default=512, ge=16, le=8192)
    preview_model: str = Field(default="default", min_length=1)
    # Execution events handled at once by the "jobs" consumer.
    consumer_concurrency: int = Field(default=8, ge=1)
    # Deliveries of one event (execution events, dead letters) before it is given up on:
    # an execution event then goes to the dead-letter stream GOUACHE_DLQ and its job fails.
    consumer_max_deliver: int = Field(default=5, ge=1)
    # First and largest delay before a failed event is redelivered (doubling in between).
    consumer_retry_initial_s: float = Field(default=1.0, gt=0)
    consumer_retry_max_s: float = Field(default=60.0, gt=0)
    # Webhook deliveries: per-POST timeout, attempts, first retry delay (doubling), how
    # often due deliveries are looked for, POSTs at once, and webhooks per project (the
    # setting keeps its name: a user's personal project is theirs).
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    webhook_max_attempts: int = Field(default=6, ge=1)
    webhook_backoff_s: float = Field(default=1.0, gt=0)
    webhook_poll_interval_s: float = Field(default=0.5, gt=0)
    webhook_concurrency: int = Field(default=8, ge=1)
    max_webhooks_per_user: int = Field(default=10, ge=1)
    # Admit webhook receivers on loopback and private addresses (single-machine mode, tests).
    allow_private_webhook_urls: bool = False
    # The result cache (per owner): how many answers it keeps across all owners, least
    # recently used evicted first (0 turns it off), and how long one answers after its job.
    result_cache_max_entries: int = Field(default=10_000, ge=0)
    result_cache_ttl_s: int = Field(default=7 * 24 * 3600, ge=1)
    # ListModels answers from a copy of the routing table at most this many seconds old
    # (a change made through this replica shows at once; 0 reads the database every call).
    routing_cache_ttl_s: float = Field(default=1.0, ge=0, le=300)
    # A style URL an owner resolved is reused by this replica for this many seconds
    # instead of asking storage for every job (0: ask every time).
    style_resolve_ttl_s: float = Field(default=60.0, ge=0, le=3600)
    # The most content images one CreateBatch may carry (each becomes a job).
    max_batch_items: int = Field(default=500, ge=1, le=10_000)
    # Monthly compute-seconds per plan, 0 unlimited (JSON, e.g. GOUACHE_JOBS_COMPUTE_QUOTAS=
    # '{"free":600,"pro":36000,"enterprise":0}'); plans left out keep these defaults.
    compute_quotas: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_COMPUTE_QUOTAS_S))
    # Encrypts webhook secrets at rest (gouache.secretbox): the base64 of 32 random bytes, or
    # several comma-separated, the first sealing and all opening (rotation). Required on
    # PostgreSQL; on SQLite without it, one is generated once into <state_dir>/jobs-secrets.key.
    secrets_key: SecretStr = SecretStr("")
    # The feedback service (EraseUser, for a user's erasure).
    feedback_addr: str = "127.0.0.1:50056"
    # User erasures (services/jobs/erasure.py): how often pending ones are looked for, and
    # the first wait before a failed attempt is retried (doubling, up to an hour).
    erasure_poll_interval_s: float = Field(default=30.0, gt=0)
    erasure_retry_s: float = Field(default=5.0, gt=0)
    # Model versions and aliases registered at first start; existing ones are never changed.
    seed_models: dict[str, Any] = Field(default_factory=lambda: DEFAULT_SEED_MODELS)

    @field_validator("compute_quotas")
    @classmethod
    def _known_plans(cls, value: dict[str, int]) -> dict[str, int]:
        return check_quotas(value)

    @model_validator(mode="before")
    @classmethod
    def _derive_database_url(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if not data.get("database_url"):
            state_dir = Path(data.get("state_dir") or _default_state_dir()).expanduser()
            data["database_url"] = f"sqlite+aiosqlite:///{state_dir / 'jobs.db'}"
        return data

    def secret_box(self) -> SecretBox:
        """The webhook-secret keys; ValueError naming GOUACHE_JOBS_SECRETS_KEY when unusable."""
        value = self.secrets_key.get_secret_value()
        if not value.strip():
            if not self.database_url.startswith("sqlite"):
                raise ValueError(
                    "GOUACHE_JOBS_SECRETS_KEY must be set on this database (it encrypts webhook "
                    "secrets at rest): the base64 of 32 random bytes, e.g. `python -c 'import "
                    "base64,os; print(base64.b64encode(os.urandom(32)).decode())'`"
                )
            value = _embedded_key(Path(self.state_dir).expanduser() / "jobs-secrets.key")
        return SecretBox.from_setting(value, variable="GOUACHE_JOBS_SECRETS_KEY")


def _embedded_key(path: Path) -> str:
    """The key of a SQLite deployment without one, made once (mode 0600) and then reused."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().strip()
        with os.fdopen(fd, "w") as file:
            file.write(generate_key())
    return path.read_text().strip()
