"""Who listens on a TCP port: the bind test before a start, and the owner check after it.

A health check that reaches a port proves only that something answers there; the mesh
also checks that the process listening is the child it started. On Linux the listening
socket's inode (from /proc/net/tcp and tcp6) is looked up among a process's descriptors
(/proc/<pid>/fd); elsewhere the owner is unknown and only the bind test applies.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
_LISTEN = "0A"


@dataclass(frozen=True)
class TakenPort:
    """A port the mesh needs that something else holds."""

    port: int
    component: str
    holder: str

    def describe(self) -> str:
        return f"port {self.port} ({self.component}) is taken by {self.holder}"


def port_is_free(host: str, port: int) -> bool:
    """Whether a listener could bind host:port now.

    SO_REUSEADDR as the servers set it: connections of an earlier run in TIME_WAIT do not
    count as taken, a listening socket does (on every address of the port, on Linux)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def taken_ports(host: str, ports: Mapping[int, str]) -> list[TakenPort]:
    """The ports (port → what uses it) that cannot be bound on host, with their holders."""
    return [
        TakenPort(port, component, describe_holder(port))
        for port, component in sorted(ports.items())
        if not port_is_free(host, port)
    ]


def listening_inodes(port: int, proc: Path = PROC) -> set[int] | None:
    """Inodes of the sockets listening on `port` (any address); None without /proc."""
    found: set[int] = set()
    readable = False
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        readable = True
        found.update(_parse_listeners(lines, port))
    return found if readable else None


def _parse_listeners(lines: Iterable[str], port: int) -> set[int]:
    inodes: set[int] = set()
    for line in lines:
        fields = line.split()
        # sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
        if len(fields) < 10 or fields[3] != _LISTEN:
            continue
        _, _, local_port = fields[1].rpartition(":")
        if int(local_port, 16) == port:
            inodes.add(int(fields[9]))
    return inodes


def socket_inodes(pid: int, proc: Path = PROC) -> set[int]:
    """Inodes of the sockets a process holds open (empty when it is gone or not ours)."""
    inodes: set[int] = set()
    try:
        entries = list((proc / str(pid) / "fd").iterdir())
    except OSError:
        return inodes
    for entry in entries:
        try:
            target = os.readlink(entry)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:[") : -1]))
    return inodes


def owns_port(pid: int, port: int, proc: Path = PROC) -> bool:
    """Whether process `pid` is the one listening on `port`.

    True where /proc cannot tell (not Linux): the caller's other checks then decide."""
    listening = listening_inodes(port, proc)
    if listening is None:
        return True
    return bool(listening & socket_inodes(pid, proc))


def listener_pids(port: int, proc: Path = PROC) -> list[int]:
    """Processes we can see that listen on `port` (others' processes are not readable)."""
    listening = listening_inodes(port, proc)
    if not listening:
        return []
    pids = []
    for entry in proc.iterdir():
        if entry.name.isdigit() and socket_inodes(int(entry.name), proc) & listening:
            pids.append(int(entry.name))
    return sorted(pids)


def describe_holder(port: int, proc: Path = PROC) -> str:
    """'pid 123 (nc -l 8080)', or what can be said when the holder is not visible."""
    pids = listener_pids(port, proc)
    if not pids:
        return "another process (not visible to this user)"
    return ", ".join(f"pid {pid} ({_command(pid, proc)})" for pid in pids)


def _command(pid: int, proc: Path) -> str:
    try:
        raw = (proc / str(pid) / "cmdline").read_bytes()
    except OSError:
        return "?"
    command = " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)
    return command if len(command) <= 120 else command[:117] + "..."
