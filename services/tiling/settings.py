"""Settings of the tiling worker, read once from GOUACHE_TILING_* variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from gouache.runtime.settings import ServiceSettings


class TilingSettings(ServiceSettings):
    """Where the bus and the other services are, how jobs are cut up, and how they retry."""

    model_config = SettingsConfigDict(env_prefix="GOUACHE_TILING_", frozen=True, extra="ignore")

    port: int = 50054
    nats_url: str = "nats://127.0.0.1:4222"
    # Servers of the JetStream cluster that hold each stream (GOUACHE_TILING_STREAM_REPLICAS):
    # 3 in the Helm chart's three-node cluster, 1 for a single server.
    stream_replicas: int = Field(default=1, ge=1, le=5)
    storage_addr: str = "127.0.0.1:50052"
    inference_addr: str = "127.0.0.1:50055"
    # Tile edge used when neither the job nor the model version's manifest names one.
    default_tile_size: int = Field(default=512, ge=64, le=2048)
    # Overlap between neighbouring tiles when the job does not set one.
    default_overlap: int = Field(default=32, ge=0)
    # Tiles sent to inference per StylizeBatch call (a progress event follows each batch).
    batch_size: int = Field(default=4, ge=1, le=64)
    # JetStream redelivers a job whose worker stopped heartbeating for this long.
    ack_wait_s: float = Field(default=30.0, gt=0)
    # Deliveries of one job in all; the last failed one publishes ExecutionFailed (if even
    # that fails, the JobCreated goes to the dead-letter stream GOUACHE_DLQ and jobs fails it).
    max_deliver: int = Field(default=5, ge=1)
    # Jobs run at once by this worker. Above one, a job's download, decode, blend, encode
    # and upload overlap with another's inference (which queues, and batches, its calls):
    # with 1, inference sat idle while tiling encoded each result (loadtests/RESULTS.md).
    concurrency: int = Field(default=4, ge=1)
    # Jobs waiting for one of the `concurrency` slots run best class first (preview before
    # export, then enterprise, pro, free: gouache.priority); a waiting job gains one class
    # per this many seconds, so a flood of high-priority jobs delays the others but never
    # starves them.
    priority_aging_s: float = Field(default=30.0, gt=0)
    # Least time between a job's start and its first progress event, and between two of
    # them: a job done sooner sends none (pending, then its outcome); 0 sends every one
    # (a report after each batch of tiles and at each stage).
    progress_interval_s: float = Field(default=0.5, ge=0)
    # Lifetime of the signed GET URL storage mints for each result as it is stored, which
    # jobs serves for the job's first reads instead of asking storage to sign one; 0 asks
    # for none. Match jobs' GOUACHE_JOBS_DOWNLOAD_URL_TTL_S.
    result_url_ttl_s: int = Field(default=3600, ge=0, le=7 * 24 * 3600)
    # First and largest delay before a job that failed transiently is redelivered.
    retry_initial_s: float = Field(default=2.0, gt=0)
    retry_max_s: float = Field(default=60.0, gt=0)
    # Deadline of one StylizeBatch call (CPU optimisation of a batch takes minutes).
    inference_timeout_s: float = Field(default=900.0, gt=0)
    # Canceled job ids remembered, and how far back they are replayed at start.
    canceled_memory: int = Field(default=10_000, ge=1)
    cancel_lookback_s: float = Field(default=3600.0, ge=0)
    # Test and development hook only: a fixed bearer token for outbound calls instead of
    # one issued by auth for service_api_key. Leave empty in production.
    service_token: str = ""
