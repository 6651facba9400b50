"""Storage settings, read once from GOUACHE_STORAGE_* environment variables."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict
from sqlalchemy.engine import make_url

from gouache.imaging.codec import ImageLimits
from gouache.runtime.settings import ServiceSettings

MIB = 1024 * 1024
MIN_SIGNING_KEY_CHARS = 32
ENV_PREFIX = "GOUACHE_STORAGE_"
# What the s3 backend cannot run without, by field.
_S3_REQUIRED = ("s3_endpoint", "s3_bucket", "s3_access_key", "s3_secret_key")
# S3 bucket names: 3-63 lowercase letters, digits, "." and "-", starting and ending alphanumeric.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]")


def _default_state_dir() -> Path:
    return Path.home() / ".local" / "state" / "gouache"


class StorageSettings(ServiceSettings):
    """Where images live, how URLs to them are signed, and the upload limits."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    port: int = 50052
    # Directory for the embedded defaults (the SQLite file and the blobs).
    state_dir: Path = _default_state_dir()
    # Default: sqlite+aiosqlite:///<state_dir>/storage.db.
    database_url: str = ""
    # Where images are stored: "local" (files under blob_root) or "s3" (a bucket on S3 or
    # MinIO; the s3_* settings below, of which endpoint, bucket and both keys are required).
    blob_backend: Literal["local", "s3"] = "local"
    # Root of the local object store. Default: <state_dir>/blobs.
    blob_root: Path | None = None
    # host:port of the S3 API (no scheme: s3_secure chooses https or http).
    s3_endpoint: str = ""
    s3_bucket: str = ""
    s3_access_key: str = ""
    s3_secret_key: SecretStr = SecretStr("")
    s3_secure: bool = True
    # Optional; without it the client asks the endpoint where the bucket is.
    s3_region: str | None = None
    # Create the bucket at start if it is missing (else a missing bucket stops the start).
    s3_create_bucket: bool = False
    # Each S3 request's timeout, and how many run at once (the store's thread pool).
    s3_timeout_s: float = 30.0
    s3_max_workers: int = 16
    # Base of every URL handed out (file_url, upload_url, download URLs): the REST edge.
    public_url: str = "http://127.0.0.1:8080"
    # HMAC-SHA256 key for signed upload/download URLs; `gouache up` generates one.
    url_signing_key: SecretStr = SecretStr("")
    # The plain HTTP server for signed uploads and downloads (0 = a free port).
    http_host: str = "127.0.0.1"
    http_port: int = 8081
    # Lifetime of a signed upload URL and its reservation, in seconds.
    upload_ttl_s: int = 15 * 60
    # Largest accepted image (signed PUT and UploadImage), in bytes.
    max_upload_bytes: int = 25 * MIB
    max_image_width: int = 8192
    max_image_height: int = 8192
    max_image_pixels: int = 40_000_000
    min_image_side: int = 16
    # Images validated (decoded, then scored for content safety) at once; each may hold
    # max_image_pixels * 3 bytes, twice while Pillow converts it.
    decode_concurrency: int = 2
    # Unused reservations are purged this long after they expire.
    reservation_retention_s: int = 24 * 3600
    # Retention (services/storage/domain/lifecycle.py): uploads (content, user styles) and
    # results are removed this many days after they are stored (0 keeps them until deleted;
    # curated styles are always kept); per plan, JSON, e.g. '{"enterprise": 90}', plans left
    # out getting retention_days. An expired image answers 410 (reason "expired") for
    # expired_tombstone_days more, then 404.
    retention_days: int = Field(default=30, ge=0, le=36_500)
    retention_days_per_plan: dict[str, int] = Field(default_factory=dict)
    expired_tombstone_days: int = Field(default=30, ge=0, le=36_500)
    # The sweep: how often it runs, how many images it handles per kind of work and run, and
    # how old an unfinished removal (a crash midway) must be before the sweep finishes it.
    retention_sweep_interval_s: float = Field(default=300.0, gt=0)
    retention_sweep_batch: int = Field(default=100, ge=1, le=10_000)
    retention_stall_s: float = Field(default=300.0, ge=0)
    # Content safety: every uploaded content and style image is scored by an NSFW classifier
    # (open_nsfw on ONNX Runtime, the `safety` extra); a score at or above the threshold
    # (0-1; 0 refuses every image) refuses the upload. false stores uploads unscreened.
    nsfw_filter: bool = True
    nsfw_threshold: float = 0.8
    # ONNX Runtime threads per scoring; up to decode_concurrency images are scored at once.
    nsfw_threads: int = 1

    @model_validator(mode="before")
    @classmethod
    def _derive_paths(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        state_dir = Path(data.get("state_dir") or _default_state_dir()).expanduser()
        if not data.get("database_url"):
            data["database_url"] = f"sqlite+aiosqlite:///{state_dir / 'storage.db'}"
        if not data.get("blob_root"):
            data["blob_root"] = state_dir / "blobs"
        return data

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("public_url must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("retention_days_per_plan")
    @classmethod
    def _check_plan_days(cls, value: dict[str, int]) -> dict[str, int]:
        bad = {plan: days for plan, days in value.items() if not 0 <= days <= 36_500}
        if bad:
            raise ValueError(f"days must be within 0 and 36500 (0 keeps forever), got {bad}")
        return value

    @field_validator("nsfw_threshold")
    @classmethod
    def _check_threshold(cls, value: float) -> float:
        if not 0.0 <= value <= 1.0:
            raise ValueError(
                f"must be within 0 and 1 (a probability), got {value}; "
                f"{ENV_PREFIX}NSFW_FILTER=false turns the check off"
            )
        return value

    @field_validator("s3_endpoint")
    @classmethod
    def _check_endpoint(cls, value: str) -> str:
        value = value.strip()
        if "://" in value or "/" in value:
            raise ValueError(
                f"must be host:port without a scheme or path, got {value!r} "
                f"({ENV_PREFIX}S3_SECURE=false selects plain http)"
            )
        return value

    @field_validator("s3_region")
    @classmethod
    def _blank_region_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @model_validator(mode="after")
    def _check_s3(self) -> StorageSettings:
        if self.blob_backend != "s3":
            return self
        missing = [
            f"{ENV_PREFIX}{name.upper()}"
            for name in _S3_REQUIRED
            if not _text(getattr(self, name)).strip()
        ]
        if missing:
            raise ValueError(f"{ENV_PREFIX}BLOB_BACKEND=s3 needs {', '.join(missing)} to be set")
        if not _BUCKET.fullmatch(self.s3_bucket):
            raise ValueError(
                f"{ENV_PREFIX}S3_BUCKET {self.s3_bucket!r} is not a valid bucket name: "
                "3-63 lowercase letters, digits, '.' and '-'"
            )
        return self

    @field_validator(
        "upload_ttl_s",
        "max_upload_bytes",
        "reservation_retention_s",
        "decode_concurrency",
        "s3_timeout_s",
        "s3_max_workers",
        "nsfw_threads",
    )
    @classmethod
    def _check_positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be positive")
        return value

    def signing_key(self) -> bytes:
        """The URL signing key as bytes; refuses to run without a long enough key."""
        key = self.url_signing_key.get_secret_value()
        if len(key) < MIN_SIGNING_KEY_CHARS:
            raise ValueError(
                f"GOUACHE_STORAGE_URL_SIGNING_KEY must be set to at least {MIN_SIGNING_KEY_CHARS} "
                "random characters (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`); "
                "`gouache up` generates one"
            )
        return key.encode()

    def resolved_blob_root(self) -> Path:
        """The blob root, never None after validation."""
        return Path(self.blob_root or self.state_dir / "blobs").expanduser()

    def image_limits(self) -> ImageLimits:
        """What an uploaded image may be (bytes, sides, pixels)."""
        return ImageLimits(
            max_bytes=self.max_upload_bytes,
            max_width=self.max_image_width,
            max_height=self.max_image_height,
            max_pixels=self.max_image_pixels,
            min_side=self.min_image_side,
        )

    def upload_ttl(self) -> timedelta:
        """How long a signed upload URL stays valid."""
        return timedelta(seconds=self.upload_ttl_s)

    def sqlite_path(self) -> Path | None:
        """The SQLite file behind database_url, if it is one (its folder must exist)."""
        url = make_url(self.database_url)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            return Path(url.database)
        return None


def _text(value: object) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else str(value)
