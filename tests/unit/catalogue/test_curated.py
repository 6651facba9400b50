"""The curated styles shipped in the package: files, provenance, and what feedforward learnt."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from importlib.resources import files
from pathlib import Path

import pytest
from PIL import Image

from gouache import catalogue
from gouache.catalogue import ArtifactMismatch

CHECKOUT = Path(__file__).resolve().parents[3]
FEEDFORWARD = "feedforward.lite0-v1"
# Artists who died more than 100 years ago: free in every country (Mexico's life+100 is
# the longest term); the other four are still protected in a few countries.
WORLDWIDE = {
    "vangogh_starry_night.jpg",
    "hokusai_great_wave_off_kanagawa.jpg",
    "dore_adventure_with_the_windmills.jpg",
    "klimt_the_kiss.jpg",
}


def test_eight_styles_ship_with_their_provenance() -> None:
    styles = catalogue.curated_styles()
    assert len(styles) == 8
    for style in styles:
        assert all((style.title, style.artist, style.year, style.rights_as_of))
        assert style.license.startswith("public domain")
        assert re.fullmatch(r"[\w./-]+:[^@]+@[0-9a-f]{40}", style.source), style.source
        assert style.public_domain_worldwide == (style.file in WORLDWIDE)
        if not style.public_domain_worldwide:
            assert "still protected in" in style.rights
            assert style.license != "public domain"


def test_the_files_are_small_jpegs_matching_the_manifest() -> None:
    assert set(catalogue.verify_curated()) == {style.file for style in catalogue.curated_styles()}
    for style in catalogue.curated_styles():
        path = catalogue.curated_directory() / style.file
        with Image.open(path) as image:
            assert image.format == "JPEG"
            assert image.size == (style.width, style.height)
            assert max(image.size) <= 512
        assert path.stat().st_size < 100_000


def test_a_changed_file_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "styles"
    shutil.copytree(catalogue.curated_directory(), copy)
    first = catalogue.curated_styles()[0]
    (copy / first.file).write_bytes(b"not the shipped bytes")
    with pytest.raises(ArtifactMismatch, match=first.file):
        catalogue.verify_curated(copy)


def test_importlib_resources_finds_the_styles() -> None:
    root = files("gouache.catalogue").joinpath("styles")
    listed = json.loads(root.joinpath("manifest.json").read_text(encoding="utf-8"))
    assert all(root.joinpath(item["file"]).is_file() for item in listed)


def test_every_trained_style_ships_as_a_curated_copy() -> None:
    trained = catalogue.trained_styles(FEEDFORWARD)
    assert len(trained) == 8
    assert all(len(style.copies) == 1 for style in trained)
    shipped = {style.sha256: style.source_sha256 for style in catalogue.curated_styles()}
    assert {copy: style.sha256 for style in trained for copy in style.copies} == shipped
    assert all(style.sha256 in style.digests for style in trained)


def test_only_feedforward_is_limited_to_trained_styles() -> None:
    for name in catalogue.names(operator_supplied=True):
        limited = catalogue.trained_styles(name)
        assert bool(limited) == (catalogue.get(name).family == "feedforward"), name
    with pytest.raises(KeyError, match="nope"):
        catalogue.trained_styles("nope.v0")


def test_no_family_honours_a_prompt_and_every_family_the_rest() -> None:
    for family in catalogue.FAMILIES:
        assert not catalogue.honours(family, "prompt")
        for param in ("alpha", "tv_weight", "luminance_only", "histogram_match", "seed"):
            assert catalogue.honours(family, param)


@pytest.mark.slow
def test_a_built_wheel_carries_the_styles(tmp_path: Path) -> None:
    source = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in ("libs", "services", "operator"):
        shutil.copytree(CHECKOUT / part, source / part, ignore=ignore)
    shutil.copy(CHECKOUT / "pyproject.toml", source)
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    built = subprocess.run(
        [*pip, "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("gouache-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        listed = json.loads(archive.read("gouache/catalogue/styles/manifest.json"))
    assert {f"gouache/catalogue/styles/{item['file']}" for item in listed} <= names
    assert len(listed) == 8
