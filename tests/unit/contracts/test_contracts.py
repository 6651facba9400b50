"""Contracts stay lint-clean, generated code stays fresh, and changes stay compatible."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "scripts" / "contracts.py"
BASELINE = ROOT / "protos" / "baseline" / "released.binpb"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_generated_code_is_fresh() -> None:
    result = _run("check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_buf_lint_is_clean() -> None:
    result = _run("lint")
    assert result.returncode == 0, result.stdout + result.stderr


def _contracts_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("contracts_script", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_breaking_change_against_the_released_contract() -> None:
    result = _run("breaking")
    assert result.returncode == 0, result.stdout + result.stderr
    assert BASELINE.is_file()


def test_a_breaking_change_against_the_released_contract_fails(tmp_path: Path) -> None:
    contracts = _contracts_script()
    contracts.ensure_deps()
    shutil.copytree(ROOT / "protos", tmp_path / "protos")
    shutil.copytree(ROOT / "build" / "protodeps", tmp_path / "build" / "protodeps")
    shutil.copyfile(ROOT / "buf.yaml", tmp_path / "buf.yaml")
    jobs = tmp_path / "protos" / "gouache" / "jobs" / "v1" / "jobs.proto"
    text = jobs.read_text()
    assert "optional string error_code = 11;" in text
    jobs.write_text(text.replace("optional string error_code = 11;", ""))

    assert contracts.breaking_against(BASELINE, root=tmp_path) != 0


def test_nothing_to_compare_against_fails(tmp_path: Path) -> None:
    contracts = _contracts_script()
    assert contracts.breaking_against(tmp_path / "absent.binpb") == 1
    result = _run("breaking", "0" * 40)
    assert result.returncode == 1
    assert "nothing to compare against is a failure" in result.stdout


def test_no_response_body_bindings() -> None:
    """Envoy 1.40's transcoder refuses to start on a response_body naming a message field
    (envoyproxy/envoy#11136): Get-style RPCs return the resource itself instead."""
    from google.api import annotations_pb2
    from google.protobuf import descriptor_pb2

    descriptor = ROOT / "libs" / "gouache" / "contracts" / "descriptor.pb"
    files = descriptor_pb2.FileDescriptorSet.FromString(descriptor.read_bytes())
    offenders = [
        f"{service.name}.{method.name}"
        for file in files.file
        if file.package.startswith("gouache.")
        for service in file.service
        for method in service.method
        if method.options.Extensions[annotations_pb2.http].response_body
    ]
    assert offenders == []
