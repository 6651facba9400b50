"""`gouache up` as a person runs it: every component starts, and a signal stops them all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from gouache.runtime.ports import free_port

pytestmark = pytest.mark.slow


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(line) for line in found.stdout.split()]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_up_starts_everything_and_stops_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    rest, base = free_port(), 0
    while base == 0:  # six consecutive free gRPC ports and their metrics ports
        candidate = free_port()
        if candidate + 106 < 65535:
            base = candidate
    gouache = Path(sys.executable).parent / "gouache"
    process = subprocess.Popen(
        [
            str(gouache),
            "--state-dir",
            str(tmp_path / "state"),
            "up",
            "--port",
            str(rest),
            "--nats-port",
            str(free_port()),
            "--admin-port",
            str(free_port()),
            "--files-port",
            str(free_port()),
            "--grpc-base-port",
            str(base),
            "--models",
            "gatys.lite0-fast",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        deadline = time.monotonic() + 180
        output = ""
        assert process.stdout is not None
        while "ready" not in output:
            line = process.stdout.readline()
            assert line or process.poll() is None, output
            output += line
            assert time.monotonic() < deadline, output
        for name in ("nats", "auth", "storage", "inference", "tiling", "jobs", "feedback", "envoy"):
            assert f"✓ {name}" in output
        children = _children(process.pid)
        assert len(children) == 8, output
        assert httpx.get(f"http://127.0.0.1:{rest}/v1/models").status_code == 401

        process.send_signal(sig)
        assert process.wait(timeout=60) == 0
        for child in children:
            assert not Path(f"/proc/{child}").exists() or _zombie(child), (
                f"component {child} still running"
            )
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True
