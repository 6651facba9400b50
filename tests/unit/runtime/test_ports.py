"""Ports chosen for components that must know them before they start."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from gouache.runtime import ports


def test_ports_are_distinct_bindable_and_below_the_ephemeral_range() -> None:
    chosen = ports.free_ports(40)
    assert len(set(chosen)) == 40
    ephemeral_start = ports._ephemeral_start()
    assert all(ports._LOWEST <= port < ephemeral_start for port in chosen)
    for port in chosen:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((ports.HOST, port))


def test_a_port_in_use_is_never_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind((ports.HOST, 0))
        taken = busy.getsockname()[1]
        monkeypatch.setattr(ports, "_LOWEST", taken)
        monkeypatch.setattr(ports, "_ephemeral_start", lambda: taken + 1_002)
        assert taken not in ports.free_ports(50)


def test_without_room_below_the_ephemeral_range_the_kernel_picks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    narrow = tmp_path / "ip_local_port_range"
    narrow.write_text("10500\t60999\n")
    monkeypatch.setattr(ports, "_EPHEMERAL_RANGE", narrow)
    chosen = ports.free_ports(5)
    assert len(set(chosen)) == 5
    assert all(port > 0 for port in chosen)
