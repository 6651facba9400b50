"""The catalogue's entries, aliases and lookups, and that importing it loads no ML library."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gouache import catalogue
from gouache.catalogue import FAMILIES, CatalogueEntry, WeightsFile

SHIPPED = (
    "adain.lite0-v1",
    "adain.lite0-v1.1",
    "wct.lite0-v1",
    "feedforward.lite0-v1",
    "gatys.lite0-v1",
    "gatys.lite0-v2",
    "gatys.lite0-fast",
)
HEAVY = ("torch", "numpy", "onnxruntime")


def test_the_shipped_names_in_load_order() -> None:
    assert catalogue.names() == SHIPPED
    assert catalogue.names(operator_supplied=True) == (*SHIPPED, "gatys.vgg19-v1")
    assert [entry.name for entry in catalogue.entries()] == list(SHIPPED)


@pytest.mark.parametrize(
    "entry", catalogue.entries(operator_supplied=True), ids=lambda entry: entry.name
)
def test_every_entry_is_well_formed(entry: CatalogueEntry) -> None:
    assert catalogue.get(entry.name) is entry
    assert entry.family in FAMILIES
    assert entry.encoder in catalogue.ENCODERS
    assert (entry.artifact is None) == (entry.family == "gatys")
    assert (catalogue.artifact_uri(entry) is None) == (entry.artifact is None)
    with pytest.raises(TypeError):
        entry.config["max_side"] = 1  # type: ignore[index]


def test_eta_seconds_are_what_jobs_quoted() -> None:
    etas = {entry.name: entry.eta_seconds for entry in catalogue.entries()}
    assert etas == dict(zip(SHIPPED, (2, 5, 3, 2, 60, 30, 5), strict=True))


def test_the_aliases_route_to_the_best_version_of_each_family() -> None:
    routes = {
        alias: [(t.model_version, t.weight) for t in targets]
        for alias, targets in catalogue.aliases().items()
    }
    assert routes == {
        "default": [("wct.lite0-v1", 100)],
        "adain": [("wct.lite0-v1", 100)],
        "adain-1.0": [("wct.lite0-v1", 100)],
        "feedforward": [("feedforward.lite0-v1", 100)],
        "wct": [("wct.lite0-v1", 100)],
        "gatys": [("gatys.lite0-v1", 100)],
        "gatys-fast": [("gatys.lite0-fast", 100)],
    }
    # The requirements' default: the best fast arbitrary-style version (issue 9), which
    # the name users know for it, "adain", follows.
    assert catalogue.DEFAULT == "wct.lite0-v1"


def test_unknown_names_list_the_known_ones() -> None:
    with pytest.raises(KeyError, match=r"nope\.v0.*adain\.lite0-v1.*gatys\.lite0-fast"):
        catalogue.get("nope.v0")


def test_the_jobs_seed_has_the_shape_jobs_reads() -> None:
    seed = catalogue.jobs_seed()
    assert [version["name"] for version in seed["versions"]] == list(SHIPPED)
    fast = seed["versions"][SHIPPED.index("gatys.lite0-fast")]
    assert fast == {
        "name": "gatys.lite0-fast",
        "family": "gatys",
        "encoder": "lite0",
        "tile_size": 256,
        "config": {"eta_seconds": 5},
        "description": catalogue.get("gatys.lite0-fast").description,
    }
    assert seed["routes"]["adain-1.0"] == [{"model_version": "wct.lite0-v1", "weight": 100}]
    seed["routes"].clear()
    assert catalogue.jobs_seed()["routes"], "each call returns a fresh structure"


def test_an_entry_refuses_an_unknown_family_and_stray_weights() -> None:
    adain = catalogue.get("adain.lite0-v1")
    with pytest.raises(ValueError, match="unknown family 'cyclegan'"):
        CatalogueEntry(**{**adain.__dict__, "family": "cyclegan"})
    stray = WeightsFile(path_in_package="weights/elsewhere/decoder.pt", sha256="0" * 64)
    with pytest.raises(ValueError, match="must lie in its artifact directory"):
        CatalogueEntry(**{**adain.__dict__, "weights": {"decoder": stray}})
    with pytest.raises(ValueError, match="sha256 must be 64 lowercase hex digits"):
        WeightsFile(path_in_package="weights/x/decoder.pt", sha256="ABC")
    with pytest.raises(ValueError, match=r"without '\.\.'"):
        WeightsFile(path_in_package="../decoder.pt", sha256="0" * 64)


def test_importing_the_catalogue_loads_no_ml_library() -> None:
    script = (
        "import sys\n"
        "from gouache import catalogue\n"
        "for entry in catalogue.entries():\n"
        "    if entry.artifact is not None:\n"
        "        catalogue.verify_entry(entry)\n"
        "catalogue.jobs_seed()\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == ""
