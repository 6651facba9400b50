"""The whole embedded mesh (NATS, six services, Envoy) on free ports, once per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gouache.cli.mesh import UNLIMITED_PLANS, Mesh, MeshConfig, MeshPorts
from gouache.client import GouacheClient
from tests.e2e.images import small


@pytest.fixture(scope="session")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    state: Path = tmp_path_factory.mktemp("mesh")
    styles = tmp_path_factory.mktemp("styles")
    for name in ("rocket", "coffee"):
        (styles / f"{name}.png").write_bytes(small(name, 64))
    config = MeshConfig(
        state_dir=state,
        styles_dir=styles,
        ports=MeshPorts.ephemeral(),
        models="gatys.lite0-fast,adain.lite0-v1,feedforward.lite0-v1",
        extra_env={"GOUACHE_TILING_ACK_WAIT_S": "5"},
        rate_limit_plans=UNLIMITED_PLANS,
    )
    running = Mesh(config)
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
