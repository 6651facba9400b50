"""Settings of the operator, read once from GOUACHE_OPERATOR_* variables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Self

import grpc
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gouache.runtime.tls import tls_files


class OperatorSettings(BaseSettings):
    """Where the mesh is, how inference pods are made, and how often resources are reconciled."""

    model_config = SettingsConfigDict(env_prefix="GOUACHE_OPERATOR_", frozen=True, extra="ignore")

    # Namespaces whose ModelVersions this operator handles (comma-separated); empty: all.
    namespaces: str = ""
    # The operator's API key (an account with role "operator": read:models, write:models).
    api_key: str = ""
    auth_addr: str = "gouache-auth:50051"
    jobs_addr: str = "gouache-jobs:50053"
    feedback_addr: str = "gouache-feedback:50056"
    # The inference that serves versions without a ModelVersion (those the jobs service
    # seeds); the stable version's quality is measured there when it has no resource.
    default_inference_addr: str = "gouache-inference:50055"
    # Where tiling reaches a version's inference: {service}, {namespace} and {port} are
    # filled in. One machine (tests, `gouache up`): every version is served by the
    # embedded inference, so the template is that address.
    endpoint_template: str = "{service}.{namespace}.svc:{port}"
    inference_port: int = Field(default=50055, ge=1, le=65535)
    inference_image: str = "ghcr.io/gouache/inference:0.1.0"
    # Extra environment for inference pods, a JSON object (e.g. the auth address).
    inference_env: dict[str, str] = Field(default_factory=dict)
    inference_service_account: str = ""
    # How long inference pods stay on a node that stopped answering before they move.
    unreachable_toleration_s: int = Field(default=30, ge=0)
    # Seconds between reconciliations of each ModelVersion, and of each GPUPool.
    tick_s: float = Field(default=5.0, gt=0)
    pool_tick_s: float = Field(default=10.0, gt=0)
    # Deadlines of calls to the mesh; golden-set evaluation runs models, so it gets longer.
    call_timeout_s: float = Field(default=10.0, gt=0)
    evaluate_timeout_s: float = Field(default=300.0, gt=0)
    # Kopf re-opens its watches this often, so a stream the API server stopped feeding
    # (it happens under load) costs at most this long.
    watch_timeout_s: int = Field(default=60, ge=5)
    # Kopf's liveness endpoint (e.g. http://0.0.0.0:8080/healthz); empty: none.
    liveness_endpoint: str = ""
    log_level: str = "INFO"
    log_json: bool = True
    # mTLS to the mesh when its services require it (GOUACHE_<SVC>_TLS_*): PEM files of the
    # operator's client certificate and key and of the CA; all three or none.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_ca_file: Path | None = None

    @model_validator(mode="after")
    def _tls_files_together(self) -> Self:
        tls_files(self.tls_cert_file, self.tls_key_file, self.tls_ca_file)
        return self

    def channel_credentials(self) -> grpc.ChannelCredentials | None:
        """What open_channel needs to reach the mesh: None for plaintext."""
        files = tls_files(self.tls_cert_file, self.tls_key_file, self.tls_ca_file)
        return None if files is None else files.channel_credentials()

    @field_validator("inference_env", mode="before")
    @classmethod
    def _env_object(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = json.loads(value) if value.strip() else {}
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise ValueError('inference_env must be a JSON object of strings, e.g. {"A": "b"}')
        return value

    @field_validator("endpoint_template")
    @classmethod
    def _template(cls, value: str) -> str:
        try:
            value.format(service="s", namespace="n", port=1)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"endpoint_template may use {{service}}, {{namespace}} and {{port}}: {exc}"
            ) from exc
        return value

    def namespace_list(self) -> list[str]:
        """The namespaces to watch; an empty list means every namespace."""
        return [part.strip() for part in self.namespaces.split(",") if part.strip()]
