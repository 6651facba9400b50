"""The CRDs on a real kube-apiserver: structural schemas refuse what they can, examples apply."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.kube import KubeCluster, KubectlError

pytestmark = pytest.mark.k8s

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "operator" / "examples"


def version(**spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "version": "adain.lite0-v9",
        "model": "adain.lite0-v1",
        "family": "adain",
        "alias": "adain",
        "pool": "h100",
        "resources": {"gpuMemoryGiB": 6},
        "rollout": {"steps": [{"weight": 10, "pause": "1m"}]},
    }
    body.update(spec)
    return {
        "apiVersion": "gouache.dev/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {"name": "mv"},
        "spec": {k: v for k, v in body.items() if v is not None},
    }


def refused(cluster: KubeCluster, namespace: str, manifest: dict[str, Any]) -> str:
    with pytest.raises(KubectlError) as error:
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest))
    return str(error.value.stderr)


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"rollout": {"steps": [{"weight": 150}]}}, "should be less than or equal to 100"),
        ({"alias": None}, "spec.alias: Required value"),
        ({"version": "Not A Name"}, "spec.version"),
        ({"resources": {"gpuMemoryGiB": -1}}, "spec.resources.gpuMemoryGiB"),
        ({"replicas": {"min": 3, "max": 2}}, "replicas.min must not exceed replicas.max"),
        ({"rollout": {"onFailure": "pray"}}, "Unsupported value"),
        ({"precision": "int8"}, 'spec.precision: Unsupported value: "int8"'),
        ({"weights": {"uri": "package://x", "sha256": "xyz"}}, "spec.weights.sha256"),
        ({"rollout": {"analysis": {"interval": "soon"}}}, "spec.rollout.analysis.interval"),
    ],
)
def test_the_schema_refuses_invalid_versions(
    kube_cluster: KubeCluster,
    kube_namespace: str,
    crds: list[str],
    spec: dict[str, Any],
    words: str,
) -> None:
    message = refused(kube_cluster, kube_namespace, version(**spec))
    assert words in message, message


def test_status_phases_are_an_enum_and_versions_immutable(
    kube_cluster: KubeCluster, kube_namespace: str, crds: list[str]
) -> None:
    kube_cluster.kubectl("apply", "-n", kube_namespace, "-f", "-", input=json.dumps(version()))
    with pytest.raises(KubectlError) as error:
        kube_cluster.kubectl(
            "patch",
            "mv",
            "mv",
            "-n",
            kube_namespace,
            "--subresource=status",
            "--type=merge",
            "-p",
            '{"status": {"phase": "Dancing"}}',
        )
    assert "Unsupported value" in str(error.value.stderr)
    kube_cluster.kubectl(
        "patch",
        "mv",
        "mv",
        "-n",
        kube_namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status": {"phase": "Canary", "weight": 10}}',
    )
    changed = version(version="adain.lite0-v10")
    message = refused(kube_cluster, kube_namespace, changed)
    assert "version and alias are immutable" in message


def test_the_examples_apply_and_print_phase_and_weight(
    kube_cluster: KubeCluster, kube_namespace: str, crds: list[str]
) -> None:
    try:
        kube_cluster.kubectl("apply", "-n", kube_namespace, "-f", str(EXAMPLES))
        table = kube_cluster.kubectl("get", "mv", "-n", kube_namespace).stdout
        header = table.splitlines()[0].split()
        assert header[:6] == ["NAME", "VERSION", "ALIAS", "PHASE", "WEIGHT", "POOL"]
        assert "AGE" in header
        pools = kube_cluster.kubectl("get", "gp").stdout.splitlines()[0].split()
        assert pools[:3] == ["NAME", "GPU", "READY-NODES"]
        short = kube_cluster.kubectl("get", "modelversions.gouache.dev", "-n", kube_namespace)
        assert "adain-v1-r2" in short.stdout
    finally:
        kube_cluster.kubectl("delete", "gpupool", "h100", "--ignore-not-found", check=False)
