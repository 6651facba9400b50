"""`gouache up` under faults: a taken port stops it before anything starts, a killed component
is restarted, a foreign listener never passes a health check, and a crash loop stops the mesh."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from gouache.cli.components import Component, grpc_serving
from gouache.cli.listeners import owns_port, port_is_free
from gouache.cli.mesh import Mesh, MeshConfig, MeshPorts
from gouache.runtime.ports import free_port
from tests.fixtures.gouache_up import GouacheUp, mesh_ports


@contextmanager
def _listening(port: int) -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen()
        yield sock


@contextmanager
def _foreign_health_server(port: int) -> Iterator[None]:
    """A gRPC server that is not ours answering SERVING, as another mesh would."""
    server = grpc.server(ThreadPoolExecutor(2))
    servicer = health.HealthServicer()
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    assert server.add_insecure_port(f"127.0.0.1:{port}") == port
    server.start()
    try:
        yield
    finally:
        server.stop(None)


def test_port_checks_find_a_listener_and_its_process() -> None:
    port = free_port()
    assert port_is_free("127.0.0.1", port)
    with _listening(port):
        assert not port_is_free("127.0.0.1", port)
        assert owns_port(os.getpid(), port)
        sleeper = subprocess.Popen(["sleep", "30"])
        try:
            assert not owns_port(sleeper.pid, port)
        finally:
            sleeper.kill()
            sleeper.wait()


def test_a_foreign_grpc_server_never_passes_for_a_component(tmp_path: Path) -> None:
    ports = MeshPorts.ephemeral()
    mesh = Mesh(MeshConfig(state_dir=tmp_path, ports=ports))
    port = ports.grpc["tiling"]
    # Our child is alive but another program answers SERVING on its port.
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with _foreign_health_server(port):
            assert grpc_serving(port)
            component = Component(name="tiling", address="", process=child, ports=(port,))
            assert not mesh.healthy(component)
    finally:
        child.kill()
        child.wait()


def test_a_child_that_listens_on_its_port_owns_it(tmp_path: Path) -> None:
    port = free_port()
    listener = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import socket, time\n"
            f"s = socket.create_server(('127.0.0.1', {port}))\n"
            "print('up', flush=True)\ntime.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert listener.stdout is not None
        assert listener.stdout.readline().strip() == "up"
        component = Component(name="nats", address="", process=listener, ports=(port,))
        assert component.owns_ports()
        listener.kill()
        listener.wait()
        assert not component.owns_ports()
        assert component.exit_status() is not None
        assert component.exit_status().describe() == "signal 9, SIGKILL"  # type: ignore[union-attr]
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.wait()


def test_a_taken_port_is_named_and_nothing_starts(tmp_path: Path) -> None:
    ports = mesh_ports()
    tiling = ports["grpc-base-port"] + 3  # auth, storage, jobs, tiling, ...
    with _listening(tiling):
        up = GouacheUp(tmp_path / "state", ports)
        assert up.process.wait(timeout=30) == 2, up.output
        up.stop()
    assert f"✗ port {tiling} (tiling, gRPC) is taken by pid " in up.output
    assert "pytest" in up.output or "python" in up.output, up.output  # the holder's command
    assert "nothing started" in up.output
    assert "✓" not in up.output
    assert not (tmp_path / "state" / "logs").exists()


def test_a_component_that_cannot_start_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    up = GouacheUp(tmp_path / "state", mesh_ports(), env={"GOUACHE_AUTH_TOKEN_TTL_S": "soon"})
    assert up.process.wait(timeout=60) == 1, up.output
    up.stop()
    assert "✓ nats" in up.output
    assert "✗ auth at 127.0.0.1:" in up.output
    assert "exited (exit code 1); see its log in logs/auth.log" in up.output
    assert "Traceback" not in up.output
    assert "stopped." in up.output


@pytest.mark.parametrize(
    ("plans", "message"),
    [
        ("{bad", "Invalid JSON"),
        ('{"pro": {"per_minute": 5, "burst": 1}}', "plans must define 'free'"),
        ('{"free": {"per_minute": -1, "burst": 1}}', "free.per_minute: Input should be greater"),
    ],
)
def test_bad_rate_limit_plans_are_refused_before_anything_starts(
    tmp_path: Path, plans: str, message: str
) -> None:
    up = GouacheUp(tmp_path / "state", mesh_ports(), extra_args=["--rate-limit-plans", plans])
    assert up.process.wait(timeout=30) == 2, up.output
    up.stop()
    assert "error: argument --rate-limit-plans: " in up.output
    assert message in up.output
    assert "✓" not in up.output


@pytest.mark.slow
def test_up_restarts_a_killed_component_and_stops_on_a_crash_loop(tmp_path: Path) -> None:
    ports = mesh_ports()
    up = GouacheUp(
        tmp_path / "state",
        ports,
        extra_args=["--models", "adain.lite0-v1", "--max-restarts", "2", "--restart-window", "120"],
    )
    try:
        up.wait_for(r"^ready", 180)
        first = up.children()
        assert set(first) == {
            "nats",
            "auth",
            "storage",
            "jobs",
            "tiling",
            "inference",
            "feedback",
            "envoy",
        }, first

        # A crash: restarted after 0.5 s, back once its own process answers.
        mark = len(up.lines)
        up.kill("tiling")
        up.wait_for(r"↻ tiling exited \(signal 9, SIGKILL\); restarting in 0\.5 s", 10, after=mark)
        up.wait_for(r"✓ tiling back after \d+\.\d s", 60, after=mark)
        assert up.children()["tiling"] != first["tiling"]
        assert up.process.poll() is None

        # Envoy too (its process is not a Popen of the mesh's own).
        mark = len(up.lines)
        up.kill("envoy")
        up.wait_for(r"✓ envoy back after", 60, after=mark)

        # A crash loop: tiling's port taken by another program, so every restart fails.
        mark = len(up.lines)
        port = ports["grpc-base-port"] + 3
        pid = up.children()["tiling"]
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while not port_is_free("127.0.0.1", port):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        with _foreign_health_server(port):
            assert up.process.wait(timeout=120) == 1, up.output
        after = up.lines[mark:]
        assert not any("✓ tiling" in line for line in after), up.output
        up.wait_for(
            r"✗ tiling exited \(exit code \d+\) while starting; crashed 3 times", 1, after=mark
        )
        assert "stopping the mesh" in up.output
        assert up.children() == {}
    finally:
        up.stop()
