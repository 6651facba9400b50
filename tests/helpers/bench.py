"""What the load-test smokes share: run a `loadtests` module, read what it appended."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_bench(tmp_path: Path, module: str, *args: str, log: Path | None = None) -> str:
    """Runs `python -m loadtests.<module> <args> --append <file>` from the repository and
    returns the file after it, which starts with an earlier section that must stay.
    `log`, when given, is a file the bench writes that a failure should show."""
    results = tmp_path / "RESULTS.md"
    results.write_text("# earlier sections stay\n")
    done = subprocess.run(
        [sys.executable, "-m", f"loadtests.{module}", *args, "--append", str(results)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    shown = log.read_text() if log is not None and log.exists() else ""
    assert done.returncode == 0, done.stdout + done.stderr + shown
    report = results.read_text()
    assert report.startswith("# earlier sections stay\n")
    return report
