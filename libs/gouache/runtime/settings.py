"""Settings every service shares; each service subclasses with its own GOUACHE_<NAME>_ prefix."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


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
