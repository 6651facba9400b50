"""The rendered chart against Kubernetes v1.37: kubeconform with schemas generated offline
from the API server's own OpenAPI document, and `kubectl apply --dry-run=server` with the
CRDs installed; the bootstrap Job's script with its own service account's token."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from tests.fixtures.kube import KubeCluster
from tests.integration.chart.conftest import CHART, MATRIX, REPO_ROOT, Rendered, render, tool

pytestmark = pytest.mark.k8s

# Custom resources: the API server checks them against their CRDs (dry-run below).
CUSTOM_KINDS = ("GPUPool", "ModelVersion", "ServiceMonitor", "PrometheusRule", "PodMonitor")
PROMETHEUS_CRDS = REPO_ROOT / ".tools" / "crds" / "prometheus-operator"
KUBECONFORM_TIMEOUT_S = 120.0
CLUSTER_KINDS = ("ClusterRole", "ClusterRoleBinding", "GPUPool", "Namespace")


@pytest.fixture(scope="module")
def schema_dir(kube_cluster: KubeCluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """kubeconform schemas from this API server's /openapi/v2 (no network)."""
    work = tmp_path_factory.mktemp("kubeconform")
    document = kube_cluster.api_get("/openapi/v2")
    assert document is not None
    openapi = work / "openapi-v2.json"
    openapi.write_text(json.dumps(document))
    out = work / "schemas"
    subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "scripts" / "kubeconform_schemas.py"),
            "--openapi",
            str(openapi),
            "--out",
            str(out),
            "--strict",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert (out / "deployment-apps-v1.json").exists()
    return out


@pytest.fixture(scope="module")
def crds_installed(kube_cluster: KubeCluster, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The chart's CRDs, and the prometheus-operator CRDs its monitoring objects need."""
    kube_cluster.install_crds(CHART / "crds")
    if PROMETHEUS_CRDS.is_dir():
        wanted = tmp_path_factory.mktemp("prometheus-crds")
        for plural in ("servicemonitors", "prometheusrules", "podmonitors"):
            source = PROMETHEUS_CRDS / f"monitoring.coreos.com_{plural}.yaml"
            if source.exists():
                shutil.copy(source, wanted)
        if any(wanted.iterdir()):
            kube_cluster.install_crds(wanted)


def kubeconform(schemas: Path, manifest: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(tool("kubeconform")),
            "-strict",
            "-summary",
            "-output",
            "text",
            "-skip",
            ",".join(CUSTOM_KINDS),
            "-schema-location",
            f"{schemas}/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json",
            "-",
        ],
        input=manifest,
        capture_output=True,
        text=True,
        check=False,
        timeout=KUBECONFORM_TIMEOUT_S,
    )


@pytest.mark.parametrize("entry", sorted(MATRIX))
def test_kubeconform_strict(
    schema_dir: Path, rendered_matrix: dict[str, Rendered], entry: str
) -> None:
    result = kubeconform(schema_dir, rendered_matrix[entry].text)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Invalid: 0, Errors: 0" in result.stdout, result.stdout


def test_kubeconform_catches_a_misspelt_field(schema_dir: Path) -> None:
    broken = render(MATRIX["default-values"]).text.replace(
        "revisionHistoryLimit:", "revisionHistoryLimits:", 1
    )
    result = kubeconform(schema_dir, broken)
    assert result.returncode != 0
    assert "revisionHistoryLimits" in result.stdout


@pytest.mark.parametrize("entry", sorted(MATRIX))
def test_server_side_dry_run(kube_cluster: KubeCluster, crds_installed: None, entry: str) -> None:
    namespace = kube_cluster.namespace(f"chart-{entry[:20]}-{uuid.uuid4().hex[:6]}")
    extra: list[str] = []
    try:
        rendered = render(MATRIX[entry], namespace=namespace)
        # Namespaces the values name for the operator's Roles exist in a real install.
        for role in rendered.of_kind("Role"):
            other = role["metadata"].get("namespace")
            if other and other != namespace and other not in extra:
                kube_cluster.kubectl("create", "namespace", other, check=False)
                extra.append(other)
        # As `helm install --namespace` does: namespaced objects without one go to the release's.
        documents = rendered.documents
        for document in documents:
            if document["kind"] not in CLUSTER_KINDS:
                document["metadata"].setdefault("namespace", namespace)
        result = kube_cluster.kubectl(
            "apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump_all(documents)
        )
        applied = [line for line in result.stdout.splitlines() if "(server dry run)" in line]
        assert len(applied) == len(rendered.documents), result.stdout
    finally:
        for name in [namespace, *extra]:
            kube_cluster.delete_namespace(name)


def test_bootstrap_job_writes_keys_with_only_its_role(
    kube_cluster: KubeCluster, tmp_path: Path
) -> None:
    """The Job's script, run as the Job's service account against the real API server with
    auth's commands on a SQLite database: keys land in the two Secrets, and a second run
    (an upgrade) keeps them."""
    namespace = kube_cluster.namespace(f"chart-boot-{uuid.uuid4().hex[:6]}")
    try:
        rendered = render(MATRIX["default-values"], namespace=namespace)
        wanted = {
            ("ServiceAccount", "gouache-bootstrap"),
            ("Role", "gouache-bootstrap"),
            ("RoleBinding", "gouache-bootstrap"),
            ("Secret", "gouache-service-keys"),
            ("Secret", "gouache-admin"),
        }
        objects = [d for d in rendered.documents if (d["kind"], d["metadata"]["name"]) in wanted]
        assert len(objects) == len(wanted)
        kube_cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(objects))
        token = kube_cluster.kubectl(
            "create", "token", "gouache-bootstrap", "-n", namespace
        ).stdout.strip()
        token_file = tmp_path / "token"
        token_file.write_text(token)
        env = {
            "PATH": str(Path(sys.executable).parent),
            "GOUACHE_AUTH_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}",
            "GOUACHE_AUTH_SIGNING_KEY_PASSPHRASE": "a passphrase for the test",
            "GOUACHE_AUTH_SCRYPT_N": "1024",
        }
        command = [
            sys.executable,
            str(CHART / "files" / "bootstrap.py"),
            "--service-keys-secret=gouache-service-keys",
            "--admin-secret=gouache-admin",
            "--admin-email=admin@example.com",
            f"--api-server={kube_cluster.server}",
            f"--token-file={token_file}",
            f"--namespace={namespace}",
            "--insecure-skip-tls-verify",
        ]
        first = subprocess.run(
            command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=240
        )
        assert first.returncode == 0, first.stderr
        assert json.loads(first.stdout)["written"] == [
            "storage",
            "inference",
            "tiling",
            "jobs",
            "feedback",
            "operator",
            "admin",
        ]

        def secret(name: str) -> dict[str, str]:
            body = kube_cluster.api_get(f"/api/v1/namespaces/{namespace}/secrets/{name}")
            assert body is not None
            return {k: base64.b64decode(v).decode() for k, v in body["data"].items()}

        keys = secret("gouache-service-keys")
        assert set(keys) == {"storage", "inference", "tiling", "jobs", "feedback", "operator"}
        assert len(set(keys.values())) == 6
        assert all(len(v) > 20 for v in keys.values())
        assert secret("gouache-admin")["email"] == "admin@example.com"
        second = subprocess.run(
            command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=240
        )
        assert second.returncode == 0, second.stderr
        assert json.loads(second.stdout)["written"] == []
        assert secret("gouache-service-keys") == keys
        # Its token opens those two Secrets and nothing else.
        denied = kube_cluster.kubectl(
            f"--token={token}",
            "get",
            "secrets",
            "-n",
            namespace,
            check=False,
        )
        assert denied.returncode != 0
        assert "forbidden" in denied.stderr.lower()
    finally:
        kube_cluster.delete_namespace(namespace)
