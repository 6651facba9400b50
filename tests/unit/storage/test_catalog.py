"""Importing the curated style catalog from a directory (with or without manifest.json)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest

from gouache import catalogue
from gouache.contracts.storage.v1 import storage_pb2
from services.storage.catalog import ManifestError, import_styles, read_catalog, run_import
from services.storage.settings import StorageSettings
from tests.unit.storage.support import SIGNING_KEY, Harness, image_bytes, settings_for

REPO = Path(__file__).resolve().parents[3]
SHARED_DATA = Path(os.environ.get("GOUACHE_TEST_SHARED_DATA", REPO.parent / "shared" / "data"))


def _write(path: Path, data: bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _entry(file: str, sha256: str, **fields: Any) -> dict[str, Any]:
    return {"file": file, "kind": "style", "sha256": sha256, **fields}


@pytest.fixture
def catalog_dir(tmp_path: Path) -> Path:
    """A small manifest in the shared-data format: 2 good styles and assorted bad entries."""
    root = tmp_path / "catalog"
    wave = _write(root / "styles" / "wave.jpg", image_bytes("jpeg", seed=1))
    night = _write(root / "styles" / "night.png", image_bytes("png", seed=2))
    content = _write(root / "content" / "photo.jpg", image_bytes("jpeg", seed=3))
    corrupt = _write(root / "styles" / "corrupt.png", b"\x89PNG\r\n\x1a\n" + b"\x01" * 100)
    _write(root / "styles" / "changed.png", image_bytes("png", seed=4))
    _write(tmp_path / "outside.png", image_bytes("png", seed=5))
    manifest = [
        _entry(
            "styles/wave.jpg",
            wave,
            title="The Great Wave",
            artist="Hokusai",
            year="c. 1831",
            rights_category="public domain",
            license_note="public domain - artist d. 1849",
            source_repo="someone/images",
            source_path="waves/kanagawa.jpg",
            source_commit="52adbd6c",
        ),
        _entry("styles/night.png", night, title=None, artist=None, year=None, sketch_style=True),
        {"file": "content/photo.jpg", "kind": "content", "sha256": content},
        _entry("styles/corrupt.png", corrupt, title="Corrupt"),
        _entry("styles/changed.png", "0" * 64, title="Changed since the manifest"),
        _entry("styles/missing.png", "1" * 64, title="Missing"),
        _entry("../outside.png", "2" * 64, title="Escapes"),
        {"kind": "style"},
    ]
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


async def test_import_from_a_manifest(storage: Harness, catalog_dir: Path) -> None:
    report = await run_import(storage.settings, catalog_dir)
    assert len(report.imported) == 2
    assert sorted(report.rejected) == ["changed.png", "corrupt.png", "missing.png"]

    listed = await storage.stub.ListStyles(
        storage_pb2.ListStylesRequest(curated=True), metadata=storage.auth("usr_bob"), timeout=5
    )
    by_title = {style.title: style for style in listed.styles}
    assert sorted(by_title) == ["Night", "The Great Wave"]
    wave = by_title["The Great Wave"]
    assert (wave.artist, wave.year, wave.license) == ("Hokusai", "c. 1831", "public domain")
    assert wave.provenance == (
        "someone/images:waves/kanagawa.jpg@52adbd6c; public domain - artist d. 1849"
    )
    assert wave.curated
    assert list(by_title["Night"].tags) == ["sketch"]
    assert by_title["Night"].artist == ""
    image = await storage.stub.ResolveImageUrl(
        storage_pb2.ResolveImageUrlRequest(url=wave.file_url),
        metadata=storage.auth("usr_bob"),
        timeout=5,
    )
    assert image.image.owner_id == "system"
    assert image.image.content_type == "image/jpeg"


async def test_import_is_idempotent_by_sha256(storage: Harness, catalog_dir: Path) -> None:
    assert await import_styles(storage.settings, catalog_dir) == 2
    files = storage.stored_files()
    assert await import_styles(storage.settings, catalog_dir) == 0
    # The same image under another name and title is the same catalog entry.
    (catalog_dir / "manifest.json").write_text(
        json.dumps([_entry("styles/night.png", hashlib.sha256(image_bytes(seed=2)).hexdigest())])
    )
    report = await run_import(storage.settings, catalog_dir)
    assert (len(report.imported), len(report.existing)) == (0, 1)
    assert storage.stored_files() == files


async def test_import_a_directory_without_manifest(storage: Harness, tmp_path: Path) -> None:
    root = tmp_path / "plain"
    _write(root / "starry_night.jpg", image_bytes("jpeg", seed=6))
    _write(root / "water-lilies.WEBP", image_bytes("webp", seed=7))
    _write(root / "notes.txt", b"not an image")
    _write(root / "nested" / "ignored.png", image_bytes("png", seed=8))
    assert await import_styles(storage.settings, root) == 2
    listed = await storage.stub.ListStyles(
        storage_pb2.ListStylesRequest(), metadata=storage.auth(), timeout=5
    )
    assert sorted(style.title for style in listed.styles) == ["Starry Night", "Water Lilies"]


def test_bad_directories_and_manifests(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_catalog(tmp_path / "absent")
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestError):
        read_catalog(tmp_path)
    (tmp_path / "manifest.json").write_text('{"file": "a.png"}')
    with pytest.raises(ManifestError, match="list"):
        read_catalog(tmp_path)


async def test_import_works_without_a_signing_key(tmp_path: Path, catalog_dir: Path) -> None:
    settings = StorageSettings(state_dir=tmp_path / "state", url_signing_key="")
    assert await import_styles(settings, catalog_dir) == 2


def test_the_import_command(tmp_path: Path, catalog_dir: Path) -> None:
    env = {
        **os.environ,
        "GOUACHE_STORAGE_STATE_DIR": str(tmp_path / "state"),
        "GOUACHE_STORAGE_URL_SIGNING_KEY": SIGNING_KEY,
        "GOUACHE_STORAGE_LOG_JSON": "false",
    }
    command = [sys.executable, "-m", "services.storage", "import-styles", str(catalog_dir)]
    first = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, check=False)
    assert "imported 2 new styles, 0 already present, 3 rejected" in first.stdout, first.stderr
    assert first.returncode == 1
    assert "rejected corrupt.png" in first.stderr
    again = subprocess.run(
        [*command, "--json"], env=env, cwd=REPO, capture_output=True, text=True, check=False
    )
    assert again.returncode == 1, again.stderr
    report = json.loads(again.stdout)
    assert (len(report["imported"]), len(report["existing"])) == (0, 2)
    assert "corrupt.png" in report["rejected"]


@pytest.mark.slow
@pytest.mark.skipif(
    not (SHARED_DATA / "manifest.json").is_file(),
    reason=f"the shared image corpus is not at {SHARED_DATA} (set GOUACHE_TEST_SHARED_DATA)",
)
async def test_import_the_shared_style_corpus(tmp_path: Path) -> None:
    manifest = json.loads((SHARED_DATA / "manifest.json").read_text())
    styles = [entry for entry in manifest if entry["kind"] == "style"]
    settings = settings_for(tmp_path)
    report = await run_import(settings, SHARED_DATA)
    assert report.rejected == {}
    assert len(report.imported) == len(styles)
    assert await import_styles(settings, SHARED_DATA) == 0


async def test_import_the_shipped_styles_with_their_provenance(storage: Harness) -> None:
    report = await run_import(storage.settings, catalogue.curated_directory())
    assert report.rejected == {}
    assert len(report.imported) == len(catalogue.curated_styles()) == 8
    listed = await storage.stub.ListStyles(
        storage_pb2.ListStylesRequest(curated=True), metadata=storage.auth("usr_bob"), timeout=5
    )
    by_title = {style.title: style for style in listed.styles}
    for shipped in catalogue.curated_styles():
        style = by_title[shipped.title]
        assert (style.artist, style.year, style.license) == (
            shipped.artist,
            shipped.year,
            shipped.license,
        )
        assert style.provenance.startswith(shipped.source)
        assert shipped.rights in style.provenance


async def test_a_style_id_names_its_image(storage: Harness, catalog_dir: Path) -> None:
    await run_import(storage.settings, catalog_dir)
    listed = await storage.stub.ListStyles(
        storage_pb2.ListStylesRequest(curated=True), metadata=storage.auth("usr_bob"), timeout=5
    )
    wave = next(style for style in listed.styles if style.title == "The Great Wave")
    resolved = await storage.stub.ResolveImageUrl(
        storage_pb2.ResolveImageUrlRequest(url=wave.style_id),
        metadata=storage.auth("usr_bob"),
        timeout=5,
    )
    assert resolved.image.file_url == wave.file_url
    assert resolved.image.sha256 == hashlib.sha256(image_bytes("jpeg", seed=1)).hexdigest()


async def test_another_users_style_id_is_not_found(storage: Harness) -> None:
    own = await storage.upload(
        image_bytes(seed=9), metadata=storage.auth("usr_alice"), filename="mine.png", kind="style"
    )
    mine = await storage.stub.ListStyles(
        storage_pb2.ListStylesRequest(curated=False), metadata=storage.auth("usr_alice"), timeout=5
    )
    (style,) = [style for style in mine.styles if style.file_url.endswith(own.image_id)]
    alice = await storage.stub.ResolveImageUrl(
        storage_pb2.ResolveImageUrlRequest(url=style.style_id),
        metadata=storage.auth("usr_alice"),
        timeout=5,
    )
    assert alice.image.image_id == own.image_id
    for ref in (style.style_id, "sty_01ARZ3NDEKTSV4RRFFQ69G5FAV"):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await storage.stub.ResolveImageUrl(
                storage_pb2.ResolveImageUrlRequest(url=ref),
                metadata=storage.auth("usr_bob"),
                timeout=5,
            )
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert "GET /v1/styles" in (caught.value.details() or "")


def test_the_import_command_imports_the_shipped_styles(tmp_path: Path, catalog_dir: Path) -> None:
    env = {
        **os.environ,
        "GOUACHE_STORAGE_STATE_DIR": str(tmp_path / "state"),
        "GOUACHE_STORAGE_URL_SIGNING_KEY": SIGNING_KEY,
        "GOUACHE_STORAGE_LOG_JSON": "false",
    }
    command = [sys.executable, "-m", "services.storage", "import-styles", "--shipped", "--json"]
    done = subprocess.run(
        [*command, str(catalog_dir)], env=env, cwd=REPO, capture_output=True, text=True, check=False
    )
    report = json.loads(done.stdout)
    assert len(report["imported"]) == 8 + 2, done.stderr
    assert "corrupt.png" in report["rejected"]
    alone = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, check=False)
    assert alone.returncode == 0, alone.stderr
    again = json.loads(alone.stdout)
    assert (len(again["imported"]), len(again["existing"])) == (0, 8)
    none = subprocess.run(
        command[:4], env=env, cwd=REPO, capture_output=True, text=True, check=False
    )
    assert none.returncode == 2
    assert "--shipped" in none.stderr
