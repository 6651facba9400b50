"""Free TCP ports for components that must know their port before they start.

A port taken by binding to 0 comes from the kernel's ephemeral range, the same range
the kernel hands to every other bind-to-0 and to outgoing connections; between the
probe and the real bind another socket can take it (CI saw Envoy lose its port to a
gRPC server that way). So ports are drawn at random from below the ephemeral range,
checked by binding, and held together until the whole set is chosen, which also makes
the ports of one call distinct.
"""

from __future__ import annotations

import random
import socket
from contextlib import ExitStack
from pathlib import Path

HOST = "127.0.0.1"
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST = 10_000
_ATTEMPTS_PER_PORT = 200


def _ephemeral_start() -> int:
    try:
        low, _high = _EPHEMERAL_RANGE.read_text().split()
        return int(low)
    except (OSError, ValueError):
        return 32_768


def _bind(port: int) -> socket.socket | None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((HOST, port))
    except OSError:
        sock.close()
        return None
    return sock


def free_ports(count: int) -> list[int]:
    """`count` distinct ports on 127.0.0.1 that nothing is bound to right now."""
    ceiling = _ephemeral_start()
    if ceiling - _LOWEST < 1_000:
        return _kernel_ports(count)
    chosen: list[int] = []
    with ExitStack() as held:
        for _ in range(count):
            for _attempt in range(_ATTEMPTS_PER_PORT):
                port = random.randrange(_LOWEST, ceiling)
                if port in chosen:
                    continue
                sock = _bind(port)
                if sock is not None:
                    held.enter_context(sock)
                    chosen.append(port)
                    break
            else:
                raise RuntimeError(f"no free port found between {_LOWEST} and {ceiling}")
    return chosen


def free_port() -> int:
    """One port on 127.0.0.1 that nothing is bound to right now."""
    return free_ports(1)[0]


def _kernel_ports(count: int) -> list[int]:
    with ExitStack() as held:
        ports = []
        for _ in range(count):
            sock = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((HOST, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports
