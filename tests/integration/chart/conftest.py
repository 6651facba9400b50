"""Rendering charts/gouache with the helm of .tools/bin, for the chart checks."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[3]
CHART = REPO_ROOT / "charts" / "gouache"
TOOLS_BIN = REPO_ROOT / ".tools" / "bin"
HELM_TIMEOUT_S = 60.0
RELEASE = "gouache"

# The matrix CI renders: every values file under ci/, and the development profile.
MATRIX: dict[str, list[Path]] = {
    **{path.stem: [path] for path in sorted((CHART / "ci").glob("*.yaml"))},
    "dev": [CHART / "values-dev.yaml"],
}


def tool(name: str) -> Path:
    """A binary from .tools/bin; the test skips, saying how to get it, when it is absent."""
    path = TOOLS_BIN / name
    if not path.exists():
        if shutil.which("go") is None:
            pytest.skip(f"{path} is absent (scripts/ensure-tools.sh {name} needs Go)")
        built = subprocess.run(
            ["bash", str(REPO_ROOT / "scripts" / "ensure-tools.sh"), name],
            capture_output=True,
            text=True,
            check=False,
            timeout=900,
        )
        if built.returncode != 0 or not path.exists():
            raise RuntimeError(f"ensure-tools.sh {name} failed:\n{built.stdout}\n{built.stderr}")
    return path


@dataclass(frozen=True)
class Rendered:
    text: str

    @property
    def documents(self) -> list[dict[str, Any]]:
        return [doc for doc in yaml.safe_load_all(self.text) if doc]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [doc for doc in self.documents if doc["kind"] == kind]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        found = [doc for doc in self.of_kind(kind) if doc["metadata"]["name"] == name]
        assert found, (
            f"no {kind} {name}; have {[d['metadata']['name'] for d in self.of_kind(kind)]}"
        )
        return found[0]


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(tool("helm")), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=HELM_TIMEOUT_S,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}")
    return result


def render(
    values: list[Path], *, namespace: str = "gouache", sets: tuple[str, ...] = ()
) -> Rendered:
    """`helm template` of the chart with these values files and --set flags."""
    args = ["template", RELEASE, str(CHART), "--namespace", namespace]
    for path in values:
        args += ["-f", str(path)]
    for item in sets:
        args += ["--set", item]
    return Rendered(helm(*args).stdout)


@pytest.fixture(scope="session")
def rendered_matrix() -> dict[str, Rendered]:
    """Every matrix entry rendered once for the session."""
    return {name: render(files) for name, files in MATRIX.items()}
