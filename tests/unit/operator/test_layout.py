"""operator/ never shadows the standard library's `operator` module."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_operator_directory_is_not_a_package() -> None:
    assert not (ROOT / "operator" / "__init__.py").exists()


def test_stdlib_operator_imports_from_the_repository_root() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import operator; operator.itemgetter; print(operator.__file__)"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "site-packages" not in result.stdout
    assert str(ROOT / "operator") not in result.stdout


def test_the_operator_package_imports_without_the_ml_stack() -> None:
    code = (
        "import sys, gouache_operator.handlers, gouache_operator.reconciler;"
        "print(sorted(m for m in ('torch', 'onnxruntime', 'numpy') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
