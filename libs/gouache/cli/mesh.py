"""The embedded mesh: NATS, the six services and Envoy as local processes.

The services keep their data in SQLite files and images on the local filesystem (backend
`local`), or in a local PostgreSQL cluster and a MinIO bucket that the mesh starts and
supervises like its other components (backend `postgres`).

A component's process and its probes are in components.py; each service's environment,
the generated secrets and the accounts and styles made at start in mesh_setup.py."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from gouache.cli.components import Component, find_binary, grpc_serving, http_ok, tcp_open, wait_for
from gouache.cli.defaults import DEFAULT_MODELS
from gouache.cli.listeners import TakenPort, taken_ports
from gouache.cli.local_minio import LocalMinio, MinioUnavailable
from gouache.cli.local_postgres import LocalPostgres, PostgresUnavailable
from gouache.cli.mesh_setup import Credentials, MeshSetup
from gouache.edge import EdgeConfig, EnvoyProcess, Upstream
from gouache.edge.studio import default_studio_dir
from gouache.runtime.ports import free_ports

logger = logging.getLogger(__name__)

SERVICES = ("auth", "storage", "inference", "tiling", "jobs", "feedback")
# Plans so generous that tests and load tests which run many jobs quickly never meet them.
UNLIMITED_PLANS = json.dumps(
    {"free": {"per_minute": 1_000_000, "burst": 100_000}},
    separators=(",", ":"),
)
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


class BackendUnavailable(RuntimeError):
    """PostgreSQL or MinIO cannot be run for the postgres backend; nothing was started."""


class PortsTaken(RuntimeError):
    """Ports the mesh needs are held by other programs; nothing was started."""

    def __init__(self, taken: list[TakenPort]) -> None:
        super().__init__("; ".join(port.describe() for port in taken))
        self.taken = taken


Report = Callable[[Component], None]


class Mesh(MeshSetup):
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
        wait_for(
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
            return tcp_open(self.config.ports.nats)
        if component.name == "postgres" and self.postgres is not None:
            return self.postgres.ready()
        if component.name == "minio" and self.minio is not None:
            return self.minio.ready()
        if component.name == "envoy":
            return http_ok(f"http://127.0.0.1:{self.config.ports.envoy_admin}/ready")
        return grpc_serving(self.config.ports.grpc[component.name])

    # -- components ------------------------------------------------------------------------

    def _start(self, name: str) -> None:
        component = self._launch(name)
        try:
            self._wait_ready(component)
        except RuntimeError:
            ended = component.exit_status()
            if name not in SERVICES or ended is None or ended.signal is None:
                raise
            # A Python service killed by a signal while starting (gRPC's core has aborted
            # with "epoll_wait: Bad file descriptor" about once in a few hundred starts on
            # these VMs) is a crash, not a configuration error: launch it once more, as
            # the supervisor would once running. An exit code is never retried.
            self.components.remove(component)
            if component.log is not None:
                component.log.close()
            print(
                f"{name} crashed while starting ({ended.describe()}); starting it again",
                file=sys.stderr,
            )
            component = self._launch(name)
            self._wait_ready(component)
        self._ready(component)

    def _wait_ready(self, component: Component) -> None:
        wait_for(
            lambda: self.healthy(component),
            f"{component.name} at {component.address}",
            self.config.startup_timeout_s,
            component,
        )

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
        binary = find_binary("nats-server")
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

    def _launch_service(self, name: str) -> Component:
        port = self.config.ports.grpc[name]
        return self._spawn(
            name,
            [sys.executable, "-m", f"services.{name}"],
            self._service_env(name),
            f"127.0.0.1:{port}",
            (port,),
        )

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
