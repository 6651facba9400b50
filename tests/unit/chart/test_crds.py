"""The chart ships the operator's CRDs unchanged."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
SOURCE = REPO_ROOT / "operator" / "crds"
CHART_CRDS = REPO_ROOT / "charts" / "gouache" / "crds"


def test_chart_crds_are_byte_identical_to_the_operators() -> None:
    source = {p.name: p.read_bytes() for p in SOURCE.glob("*.yaml")}
    shipped = {p.name: p.read_bytes() for p in CHART_CRDS.glob("*.yaml")}
    assert source, f"no CRDs in {SOURCE}"
    assert shipped.keys() == source.keys(), "copy operator/crds/*.yaml to charts/gouache/crds/"
    for name, content in source.items():
        assert shipped[name] == content, f"charts/gouache/crds/{name} differs from operator/crds"
