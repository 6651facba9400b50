"""Contracts stay lint-clean, generated code stays fresh, and changes stay compatible."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "contracts.py"), *args],
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


def test_no_breaking_change_against_previous_commit() -> None:
    result = _run("breaking", "HEAD~1")
    assert result.returncode == 0, result.stdout + result.stderr


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
