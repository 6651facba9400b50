"""EnvoyProcess: several edges side by side, each gone once stopped."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest

from gouache.edge import Upstream
from tests.fixtures.envoy import free_port, start_edge


def test_edges_run_side_by_side_and_stop(tmp_path: Path) -> None:
    nowhere = Upstream("127.0.0.1", free_port())
    first = start_edge(tmp_path / "first", nowhere, nowhere)
    try:
        second = start_edge(tmp_path / "second", nowhere, nowhere)
        second.stop()
    finally:
        first.stop()

    for edge in (first, second):
        assert edge.process.pid is None
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(f"{edge.admin_url}/ready", timeout=1)
