"""Settings every service shares; each service subclasses with its own GOUACHE_<NAME>_ prefix."""

from __future__ import annotations

from pathlib import Path
from typing import Self

import grpc
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gouache.ratelimit.plans import PlanLimit, default_plans
from gouache.runtime.context import DEFAULT_PLAN
from gouache.runtime.tls import TlsFiles


class ServiceSettings(BaseSettings):
    """Read once at start from GOUACHE_<SERVICE>_* variables and passed down, never re-read."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    host: str = "127.0.0.1"
    # 0 binds a free port (tests); the bound port is logged and returned.
    port: int = 0
    # Prometheus metrics over HTTP; None disables, 0 picks a free port.
    metrics_port: int | None = None
    log_level: str = "INFO"
    log_json: bool = True
    # Where to fetch the JWKS that verifies bearer tokens (the auth service).
    auth_addr: str = "127.0.0.1:50051"
    # This service's own API key, for calls to other services.
    service_api_key: str = ""
    # Deadline for every outbound call, in seconds.
    call_timeout_s: float = 30.0
    # Graceful drain on SIGTERM, in seconds.
    grace_s: float = 10.0
    # Largest gRPC message accepted or sent (bytes).
    max_message_bytes: int = 64 * 1024 * 1024
    # Export trace spans to stderr.
    otel_console: bool = False
    jwt_issuer: str = "gouache-auth"
    jwt_audience: str = "gouache"
    # mTLS between services (PEM files): all three, or none for plaintext h2c. With them the
    # gRPC port requires client certificates signed by the CA, and every channel this
    # service opens presents its certificate and trusts only the CA.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_ca_file: Path | None = None

    @model_validator(mode="after")
    def _tls_files_together(self) -> Self:
        given = (self.tls_cert_file, self.tls_key_file, self.tls_ca_file)
        if any(given) and not all(given):
            raise ValueError("mTLS needs tls_cert_file, tls_key_file and tls_ca_file together")
        return self

    def tls_files(self) -> TlsFiles | None:
        """The mTLS files, or None when the service speaks plaintext."""
        if self.tls_cert_file is None or self.tls_key_file is None or self.tls_ca_file is None:
            return None
        return TlsFiles(cert=self.tls_cert_file, key=self.tls_key_file, ca=self.tls_ca_file)

    def channel_credentials(self) -> grpc.ChannelCredentials | None:
        """What open_channel needs to reach another service: None for plaintext."""
        files = self.tls_files()
        return None if files is None else files.channel_credentials()

    # Rate limits of the public services (auth, storage, jobs, feedback), shared by every
    # replica through a NATS KV bucket at this URL; empty turns rate limiting off.
    rate_limit_nats_url: str = ""
    # Limits per plan (a token's `plan` claim; "free" without one), JSON in the environment:
    # {"free": {"per_minute": 60, "burst": 20}, ...}; key_per_minute and key_burst, when
    # set, limit each API key of the plan's users more tightly than the user.
    rate_limit_plans: dict[str, PlanLimit] = Field(default_factory=default_plans)
    # When the store is unreachable: let calls through (True) or answer UNAVAILABLE.
    rate_limit_fail_open: bool = True
    # Copies of the bucket in a clustered NATS (the chart: one per server, up to 3), so that
    # losing a NATS server forgets no one's spending.
    rate_limit_replicas: int = Field(default=1, ge=1, le=5)

    @field_validator("rate_limit_plans")
    @classmethod
    def _has_default_plan(cls, plans: dict[str, PlanLimit]) -> dict[str, PlanLimit]:
        if DEFAULT_PLAN not in plans:
            raise ValueError(
                f"rate_limit_plans must define {DEFAULT_PLAN!r}, the plan of tokens without one"
            )
        return plans
