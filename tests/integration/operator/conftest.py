"""The operator as a process against the simulated cluster, with a scripted mesh."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.fixtures.kube import KubeCluster
from tests.helpers.fake_mesh import FakeMesh
from tests.helpers.operator import OperatorProcess, RolloutWorld

ROOT = Path(__file__).resolve().parents[3]
CRDS = ROOT / "operator" / "crds"


@pytest.fixture(scope="session")
def crds(kube_cluster: KubeCluster) -> list[str]:
    """The gouache CRDs, installed once and Established."""
    return kube_cluster.install_crds(CRDS)


@dataclass
class OperatorWorld(RolloutWorld):
    """A RolloutWorld whose mesh is scripted."""

    mesh: FakeMesh = field(kw_only=True)


@pytest.fixture
def operator_world(
    kube_cluster: KubeCluster, kube_namespace: str, crds: list[str], tmp_path: Path
) -> Iterator[OperatorWorld]:
    """A running operator for one namespace, a scripted mesh seeded with adain v1."""
    mesh = FakeMesh().start()
    mesh.seed("adain", "adain.lite0-v1")
    env = {
        "KUBECONFIG": str(kube_cluster.kubeconfig),
        "GOUACHE_OPERATOR_NAMESPACES": kube_namespace,
        "GOUACHE_OPERATOR_API_KEY": "fake-key",
        "GOUACHE_OPERATOR_AUTH_ADDR": mesh.address,
        "GOUACHE_OPERATOR_JOBS_ADDR": mesh.address,
        "GOUACHE_OPERATOR_FEEDBACK_ADDR": mesh.address,
        "GOUACHE_OPERATOR_DEFAULT_INFERENCE_ADDR": mesh.address,
        "GOUACHE_OPERATOR_ENDPOINT_TEMPLATE": mesh.address,
        "GOUACHE_OPERATOR_TICK_S": "0.5",
        "GOUACHE_OPERATOR_POOL_TICK_S": "1",
        "GOUACHE_OPERATOR_UNREACHABLE_TOLERATION_S": "2",
        "GOUACHE_OPERATOR_WATCH_TIMEOUT_S": "20",
        "GOUACHE_OPERATOR_LOG_JSON": "false",
    }
    operator = OperatorProcess(env=env, log_path=tmp_path / "operator.log")
    operator.start()
    world = OperatorWorld(kube_cluster, kube_namespace, operator, mesh=mesh)
    try:
        yield world
    finally:
        # Versions go first, while the operator runs, so its finalizer is released.
        kube_cluster.kubectl(
            "delete",
            "modelversions",
            "--all",
            "-n",
            kube_namespace,
            "--wait=true",
            "--timeout=30s",
            check=False,
        )
        operator.stop()
        mesh.stop()
        for pool in world.pools:
            kube_cluster.kubectl("delete", "gpupool", pool, "--ignore-not-found", check=False)
        # Shown with the test's output when it fails.
        print(f"--- operator log (tail)\n{operator.log()[-6000:]}")
