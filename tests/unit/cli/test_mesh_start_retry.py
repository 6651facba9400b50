"""`gouache up` starts a Python service once more when a signal killed it while starting
(a crash), never when it exited with a code (a configuration error says why in its log)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from gouache.cli.components import Component
from gouache.cli.mesh import Mesh, MeshConfig, MeshPorts

ABORT = "import os, signal; os.kill(os.getpid(), signal.SIGABRT)"
EXIT_2 = "import sys; sys.exit(2)"
SERVE = "import time; time.sleep(30)"


def _mesh(tmp_path: Path, programs: list[str], monkeypatch: pytest.MonkeyPatch) -> Mesh:
    mesh = Mesh(MeshConfig(state_dir=tmp_path / "state", ports=MeshPorts.ephemeral()))
    mesh.config.startup_timeout_s = 10
    (tmp_path / "state" / "logs").mkdir(parents=True, exist_ok=True)
    launched = iter(programs)

    def launch(name: str) -> Component:
        return mesh._spawn(name, [sys.executable, "-c", next(launched)], {}, "test", ())

    def healthy(component: Component) -> bool:
        # "Serving" once the sleeper is up; the others end before they could be.
        return (
            component.exit_status() is None
            and component.process is not None
            and (component.process.args[-1] == SERVE)
        )

    monkeypatch.setattr(mesh, "_launch_service", launch)
    monkeypatch.setattr(mesh, "healthy", healthy)
    return mesh


def _stop(mesh: Mesh) -> None:
    for component in mesh.components:
        if component.process is not None:
            component.process.kill()
            component.process.wait()
        if component.log is not None:
            component.log.close()


def test_a_service_killed_by_a_signal_while_starting_is_started_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    mesh = _mesh(tmp_path, [ABORT, SERVE], monkeypatch)
    try:
        mesh._start("tiling")
        [component] = mesh.components
        assert component.status == "ready"
        assert component.exit_status() is None
    finally:
        _stop(mesh)
    assert "tiling crashed while starting (signal 6, SIGABRT); starting it again" in (
        capsys.readouterr().err
    )


def test_a_second_crash_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mesh = _mesh(tmp_path, [ABORT, ABORT], monkeypatch)
    try:
        with pytest.raises(RuntimeError, match=r"tiling at test exited \(signal 6, SIGABRT\)"):
            mesh._start("tiling")
    finally:
        _stop(mesh)


def test_an_exit_code_is_not_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mesh = _mesh(tmp_path, [EXIT_2, SERVE], monkeypatch)
    try:
        with pytest.raises(RuntimeError, match=r"exited \(exit code 2\)"):
            mesh._start("jobs")
        assert len(mesh.components) == 1
    finally:
        _stop(mesh)
