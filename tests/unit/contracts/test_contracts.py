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
