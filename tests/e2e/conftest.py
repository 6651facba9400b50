"""The whole embedded mesh (NATS, six services, Envoy) on free ports, once per session and
backend: SQLite and local files, then a PostgreSQL cluster and a MinIO bucket of its own."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from gouache.cli.mesh import (
    UNLIMITED_PLANS,
    Backend,
    BackendUnavailable,
    Mesh,
    MeshConfig,
    MeshPorts,
)
from gouache.client import GouacheClient
from tests.e2e.images import small
from tests.fixtures.gouache_up import reachable_state_dir
from tests.fixtures.required import missing_server

# Every test on the mesh runs on both; pytest starts one mesh, runs its tests, stops it.
BACKENDS = [
    pytest.param("local", id="sqlite-files"),
    pytest.param("postgres", id="postgres-minio", marks=[pytest.mark.postgres, pytest.mark.minio]),
]


@pytest.fixture(scope="session", params=BACKENDS)
def mesh(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Mesh]:
    backend: Backend = request.param
    styles = tmp_path_factory.mktemp("styles")
    for name in ("rocket", "coffee"):
        (styles / f"{name}.png").write_bytes(small(name, 64))
    with ExitStack() as stack:
        state: Path = (
            stack.enter_context(reachable_state_dir("gouache-e2e-"))
            if backend == "postgres"
            else tmp_path_factory.mktemp("mesh")
        )
        config = MeshConfig(
            state_dir=state,
            styles_dir=styles,
            ports=MeshPorts.ephemeral(),
            models="gatys.lite0-fast,adain.lite0-v1,adain.lite0-v1.1,feedforward.lite0-v1,wct.lite0-v1",
            backend=backend,
            extra_env={"GOUACHE_TILING_ACK_WAIT_S": "5"},
            rate_limit_plans=UNLIMITED_PLANS,
        )
        running = Mesh(config)
        try:
            running.check_backend()
        except BackendUnavailable as exc:
            missing_server(str(exc))
        try:
            running.start()
        except BaseException:
            for log in sorted((state / "logs").glob("*.log")):
                print(f"--- {log.name}\n{log.read_text()[-3000:]}")
            raise
        yield running
        running.stop()


@pytest.fixture(scope="session")
def admin(mesh: Mesh) -> Iterator[GouacheClient]:
    assert mesh.credentials is not None
    with GouacheClient(mesh.config.public_url, mesh.credentials.admin_api_key) as client:
        yield client
