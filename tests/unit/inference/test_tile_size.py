"""Inference reports each model version's default tile size from the registry."""

from __future__ import annotations

from services.inference.server import registry_tile_size


def test_registry_tile_size_of_known_versions() -> None:
    assert registry_tile_size("gatys.lite0-fast") == 256
    assert registry_tile_size("gatys.lite0-v1") == 512


def test_unknown_version_has_no_tile_size() -> None:
    assert registry_tile_size("nope.v0") == 0
