"""Imports the curated style catalog from a directory with a manifest.json, or of bare images."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gouache.db import create_engine
from gouache.runtime.errors import GouacheError
from services.storage.blobs import open_blobs
from services.storage.domain import CatalogEntry, ImageLibrary, title_from_filename
from services.storage.domain.screening import ContentSafety
from services.storage.records import STYLE
from services.storage.safety import load_content_safety
from services.storage.settings import StorageSettings
from services.storage.store import StorageStore
from services.storage.urls import UrlSigner

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp"})


class ManifestError(ValueError):
    """A manifest.json that cannot be read as a list of entries."""


@dataclass(frozen=True)
class CatalogItem:
    """One style image to import and what the catalog says about it."""

    path: Path
    entry: CatalogEntry
    sha256: str | None = None


@dataclass
class ImportReport:
    """What an import did: new styles, ones already in the catalog, and refused files."""

    imported: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)


def read_catalog(directory: Path) -> list[CatalogItem]:
    """The style images of a directory: from its manifest.json, else every image in it.

    Manifest entries (a JSON list) with `kind` other than "style" are skipped; `file` is
    relative to the directory and may not leave it. Without a manifest, each .png, .jpg,
    .jpeg or .webp file directly in the directory is a style titled after its file name.
    """
    if not directory.is_dir():
        raise FileNotFoundError(f"style directory {directory} does not exist")
    manifest = directory / MANIFEST
    if not manifest.is_file():
        return [
            CatalogItem(path=path, entry=CatalogEntry(title=title_from_filename(path.name)))
            for path in sorted(directory.iterdir())
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES
        ]
    try:
        entries = json.loads(manifest.read_text())
    except (OSError, ValueError) as exc:
        raise ManifestError(f"{manifest} is not readable JSON: {exc}") from exc
    if not isinstance(entries, list):
        raise ManifestError(f"{manifest} must hold a JSON list of entries")
    root = directory.resolve()
    items = []
    for index, raw in enumerate(entries):
        if not isinstance(raw, dict) or raw.get("kind") != STYLE:
            continue
        file = raw.get("file")
        if not isinstance(file, str) or not file:
            logger.warning("manifest entry without a file", extra={"index": index})
            continue
        path = (root / file).resolve()
        if not path.is_relative_to(root):
            logger.warning("manifest entry points outside the directory", extra={"file": file})
            continue
        sha256 = raw.get("sha256")
        items.append(
            CatalogItem(
                path=path,
                entry=entry_from_manifest(raw, path.name),
                sha256=sha256 if isinstance(sha256, str) and sha256 else None,
            )
        )
    return items


def entry_from_manifest(raw: dict[str, Any], filename: str) -> CatalogEntry:
    """Catalog fields from a manifest entry (the format of shared/data/manifest.json)."""
    license_text = _text(raw.get("rights_category")) or _text(raw.get("license_note"))
    source = _text(raw.get("source_repo"))
    if source and _text(raw.get("source_path")):
        source += f":{_text(raw.get('source_path'))}"
    if source and _text(raw.get("source_commit")):
        source += f"@{_text(raw.get('source_commit'))}"
    provenance = "; ".join(part for part in (source, _text(raw.get("license_note"))) if part)
    tags = raw.get("tags")
    if isinstance(tags, list):
        tag_list = [str(tag) for tag in tags if str(tag).strip()]
    else:
        tag_list = ["sketch"] if raw.get("sketch_style") is True else []
    return CatalogEntry(
        title=_text(raw.get("title")) or title_from_filename(filename),
        artist=_text(raw.get("artist")),
        year=_text(raw.get("year")),
        license=license_text,
        provenance=provenance,
        tags=tuple(tag_list),
    )


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


async def import_catalog(library: ImageLibrary, directory: Path) -> ImportReport:
    """Validates and stores each style image of directory as a curated style, once per sha256.

    A file that is missing, unreadable, differs from the manifest's sha256 or fails image
    validation is reported in `rejected` and skipped; the others are still imported.
    """
    report = ImportReport()
    for item in read_catalog(directory):
        name = item.path.name
        try:
            data = await asyncio.to_thread(item.path.read_bytes)
        except OSError as exc:
            report.rejected[name] = f"cannot read the file: {exc.strerror or exc}"
            continue
        if item.sha256 is not None and hashlib.sha256(data).hexdigest() != item.sha256.lower():
            report.rejected[name] = "the file's sha256 differs from the manifest's"
            continue
        try:
            view, created = await library.add_curated_style(data, item.entry, filename=name)
        except GouacheError as exc:
            report.rejected[name] = exc.message
            continue
        (report.imported if created else report.existing).append(view.style.style_id)
    for name, why in report.rejected.items():
        logger.warning("style not imported", extra={"file": name, "why": why})
    logger.info(
        "style catalog imported",
        extra={
            "directory": str(directory),
            "imported": len(report.imported),
            "existing": len(report.existing),
            "rejected": len(report.rejected),
        },
    )
    return report


async def run_import(
    settings: StorageSettings, directory: Path, safety: ContentSafety | None = None
) -> ImportReport:
    """import_catalog against the database and blob store that settings name.

    With `safety` (load_content_safety's), each style's NSFW score is recorded; a curated
    style is never refused for it (an operator chose it), only logged.
    """
    sqlite_file = settings.sqlite_path()
    if sqlite_file is not None:
        sqlite_file.parent.mkdir(parents=True, exist_ok=True)
    store = StorageStore(create_engine(settings.database_url))
    blobs = open_blobs(settings)
    try:
        await store.create_schema()
        await blobs.prepare()
        # Importing signs no URL, so a missing signing key must not stop it.
        key = settings.url_signing_key.get_secret_value().encode() or secrets.token_bytes(32)
        library = ImageLibrary(
            store,
            blobs.store,
            UrlSigner(key, settings.public_url),
            limits=settings.image_limits(),
            upload_ttl=settings.upload_ttl(),
            decode_concurrency=settings.decode_concurrency,
            safety=safety,
        )
        return await import_catalog(library, Path(directory))
    finally:
        await store.close()
        await blobs.close()


async def run_imports(settings: StorageSettings, directories: list[Path]) -> ImportReport:
    """run_import of each directory in turn, in one report (rejections named by file)."""
    total = ImportReport()
    safety = await _content_safety(settings)
    for directory in directories:
        report = await run_import(settings, directory, safety)
        total.imported += report.imported
        total.existing += report.existing
        total.rejected.update(report.rejected)
    return total


async def import_styles(settings: StorageSettings, directory: Path | str) -> int:
    """Imports the curated styles of directory; returns how many were new (`gouache up`)."""
    report = await run_import(settings, Path(directory), await _content_safety(settings))
    return len(report.imported)


async def _content_safety(settings: StorageSettings) -> ContentSafety | None:
    return await asyncio.to_thread(
        load_content_safety,
        enabled=settings.nsfw_filter,
        threshold=settings.nsfw_threshold,
        threads=settings.nsfw_threads,
    )
