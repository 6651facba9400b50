"""How the embedded mesh sets up its services: each one's environment, the secrets it
generates for them once (secrets.json), and the accounts and curated styles it makes
through the services' own commands (credentials.json, operator.json)."""

from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gouache.cli.local_minio import LocalMinio
from gouache.cli.local_postgres import LocalPostgres
from gouache.secretbox import generate_key

if TYPE_CHECKING:
    from gouache.cli.mesh import MeshConfig

logger = logging.getLogger(__name__)

SERVICE_ACCOUNTS = ("storage", "inference", "tiling", "jobs", "feedback")
# The services the edge exposes: their calls are rate limited through NATS.
PUBLIC_SERVICES = ("auth", "storage", "jobs", "feedback")
# The account (role "operator") a canary operator process uses against this mesh.
OPERATOR_ACCOUNT = "operator"


@dataclass(frozen=True)
class Credentials:
    """The keys `start` made: the admin's, and the operator account's (operator.json)."""

    admin_api_key: str
    admin_email: str
    operator_api_key: str


class MeshSetup:
    """Mesh's service environment and setup (a mixin: Mesh sets the attributes declared here)."""

    config: MeshConfig
    postgres: LocalPostgres | None
    minio: LocalMinio | None
    _secrets: dict[str, str]
    _service_keys: dict[str, str]

    def _service_env(self, name: str) -> dict[str, str]:
        state = self.config.state_dir
        ports = self.config.ports
        prefix = f"GOUACHE_{name.upper()}_"
        env = {
            "PORT": str(ports.grpc[name]),
            "METRICS_PORT": str(ports.metrics[name]),
            "DATABASE_URL": (
                self.postgres.url()
                if self.postgres is not None
                else f"sqlite+aiosqlite:///{state / (name + '.db')}"
            ),
            "NATS_URL": f"nats://127.0.0.1:{ports.nats}",
            "AUTH_ADDR": f"127.0.0.1:{ports.grpc['auth']}",
            "STORAGE_ADDR": f"127.0.0.1:{ports.grpc['storage']}",
            "INFERENCE_ADDR": f"127.0.0.1:{ports.grpc['inference']}",
            "FEEDBACK_ADDR": f"127.0.0.1:{ports.grpc['feedback']}",
            "JOBS_ADDR": f"127.0.0.1:{ports.grpc['jobs']}",
            "STATE_DIR": str(state),
        }
        if name == "storage":
            env.update(
                {
                    "HTTP_PORT": str(ports.storage_http),
                    "PUBLIC_URL": self.config.public_url,
                    "URL_SIGNING_KEY": self._secrets["url_signing_key"],
                    **(
                        self.minio.storage_env()
                        if self.minio is not None
                        else {"BLOB_ROOT": str(state / "blobs")}
                    ),
                }
            )
        if name == "inference":
            env["MODELS"] = self.config.models
        if name == "jobs":
            # One machine: webhook receivers are local processes too.
            env["ALLOW_PRIVATE_WEBHOOK_URLS"] = "true"
            env["SECRETS_KEY"] = self._secrets["jobs_secrets_key"]
        if name == "auth":
            env["SIGNING_KEY_PASSPHRASE"] = self._secrets["key_encryption_secret"]
        if name in PUBLIC_SERVICES:
            env["RATE_LIMIT_NATS_URL"] = f"nats://127.0.0.1:{ports.nats}"
            if self.config.rate_limit_plans:
                env["RATE_LIMIT_PLANS"] = self.config.rate_limit_plans
        if name in SERVICE_ACCOUNTS and self._service_keys:
            env["SERVICE_API_KEY"] = self._service_keys[name]
        merged = {prefix + key: value for key, value in env.items()}
        # Every OTEL_* variable (exporter, endpoint, sampler, resource attributes) reaches each
        # component with the rest of this environment; the service name alone is per process,
        # or all six would report as one.
        merged["OTEL_SERVICE_NAME"] = f"gouache-{name}"
        merged.update(self.config.extra_env)
        return merged

    def _bootstrap(self) -> Credentials:
        """The admin, the services' accounts and the operator account, by auth's own commands."""
        admin = self._run_command(
            "auth", ["bootstrap", "--email", self.config.admin_email, "--json"]
        )
        keys = self._run_command("auth", ["create-service-account", *SERVICE_ACCOUNTS, "--json"])
        self._service_keys = {name: str(keys[name]) for name in SERVICE_ACCOUNTS}
        operator = self._run_command(
            "auth", ["create-service-account", OPERATOR_ACCOUNT, "--role", "operator", "--json"]
        )
        admin_key = str(admin["api_key"])
        operator_key = str(operator[OPERATOR_ACCOUNT])
        credentials = Credentials(
            admin_api_key=admin_key,
            admin_email=self.config.admin_email,
            operator_api_key=operator_key,
        )
        state = self.config.state_dir
        _write_secret(
            state / "credentials.json",
            {
                "api_key": admin_key,
                "email": self.config.admin_email,
                "base_url": self.config.public_url,
            },
        )
        grpc_ports = self.config.ports.grpc
        _write_secret(
            state / "operator.json",
            {
                "api_key": operator_key,
                **{
                    f"{name}_addr": f"127.0.0.1:{grpc_ports[name]}"
                    for name in ("jobs", "feedback", "inference", "auth")
                },
            },
        )
        return credentials

    def _import_styles(self) -> None:
        """The curated styles the package ships (idempotent), and those of --styles DIR."""
        extra = [] if self.config.styles_dir is None else [str(self.config.styles_dir)]
        # Exit code 1: some files were refused; the others are imported and the mesh starts.
        report = self._run_command(
            "storage", ["import-styles", "--shipped", *extra, "--json"], ok=(0, 1)
        )
        for name, why in dict(report.get("rejected", {})).items():
            logger.warning("style %s not imported: %s", name, why)

    def _run_command(
        self, service: str, args: list[str], *, ok: tuple[int, ...] = (0,)
    ) -> dict[str, Any]:
        """Runs `python -m services.<service> ARGS` with the service's settings; its JSON.

        The library never imports a service: the mesh prepares one (accounts, curated styles)
        through the service's own command line, as an operator would. The JSON on stdout
        (API keys, for auth) is returned, never shown; stderr is appended to the service's log.
        """
        what = f"python -m services.{service} {args[0]}"
        log = self.config.state_dir / "logs" / f"{service}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        try:
            done = subprocess.run(
                [sys.executable, "-m", f"services.{service}", *args],
                env={**os.environ, **self._service_env(service)},
                capture_output=True,
                timeout=self.config.startup_timeout_s,
                check=False,
                # Like the services: Ctrl-C in the terminal reaches the CLI, which stops the mesh.
                start_new_session=True,
            )
        except subprocess.TimeoutExpired as exc:
            with log.open("ab") as file:
                file.write(exc.stderr or b"")
            raise TimeoutError(
                f"{what} did not finish in {self.config.startup_timeout_s:.0f} s; "
                f"see logs/{service}.log"
            ) from exc
        with log.open("ab") as file:
            file.write(done.stderr)
        if done.returncode not in ok:
            last = done.stderr.decode(errors="replace").strip().splitlines()[-1:]
            said = f": {last[0]}" if last else ""
            raise RuntimeError(
                f"{what} exited with code {done.returncode}{said}; see logs/{service}.log"
            )
        try:
            result = json.loads(done.stdout)
        except ValueError as exc:
            raise RuntimeError(f"{what} printed no JSON; see logs/{service}.log") from exc
        if not isinstance(result, dict):
            raise RuntimeError(f"{what} printed {type(result).__name__}, not a JSON object")
        return result

    def _load_secrets(self) -> dict[str, str]:
        """The mesh's generated secrets (secrets.json, mode 0600), made once, when missing.

        The postgres backend adds PostgreSQL's password and MinIO's root credentials, so a
        state directory made by the local backend gains them on its first postgres run."""
        path = self.config.state_dir / "secrets.json"
        loaded: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
        wanted = ["url_signing_key", "key_encryption_secret", "jobs_secrets_key"]
        if self.config.backend == "postgres":
            wanted += ["postgres_password", "minio_root_user", "minio_root_password"]
        made = {"minio_root_user": lambda: secrets.token_hex(10), "jobs_secrets_key": generate_key}
        missing = {
            name: made.get(name, lambda: secrets.token_urlsafe(32))()
            for name in wanted
            if name not in loaded
        }
        if missing:
            self.config.state_dir.mkdir(parents=True, exist_ok=True)
            loaded = {**loaded, **missing}
            _write_secret(path, loaded)
        return loaded


def _write_secret(path: Path, data: dict[str, str]) -> None:
    """Writes a JSON file only its owner can read, with no moment of wider permissions."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        json.dump(data, file)
    path.chmod(0o600)
