"""The curated styles shipped in the package, and the styles each feedforward version learnt."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path

from gouache.catalogue.artifacts import (
    ArtifactMismatch,
    file_sha256,
    package_uri,
    pinned_manifest,
    resolve_uri,
)
from gouache.catalogue.model import MANIFEST_FILE, check_sha256
from gouache.catalogue.shipped import ENTRIES

CURATED_PACKAGE = "gouache.catalogue"
CURATED_DIRECTORY = "styles"
"""Where the curated styles ship: `gouache/catalogue/styles/`, JPEGs beside a manifest.json
(a JSON list in the format of the shared corpus's manifest, which storage imports)."""


@dataclass(frozen=True)
class CuratedStyle:
    """One shipped style image and what is known about it.

    `sha256` is the shipped file's; `source_file` and `source_sha256` name the corpus file
    it was made from (scripts/build_curated_styles.py), the one a feedforward version
    trained on. `rights` says where the work is in the public domain, as of `rights_as_of`.
    """

    file: str
    sha256: str
    title: str
    artist: str
    year: str
    license: str
    rights: str
    rights_as_of: str
    public_domain_worldwide: bool
    source: str
    source_file: str
    source_sha256: str
    width: int
    height: int


@dataclass(frozen=True)
class TrainedStyle:
    """A style a feedforward version was trained on, from its manifest.

    `sha256` is the file it trained on; `copies` the shipped curated copies made from it.
    A job may name either: `digests` holds both.
    """

    slot: int
    title: str
    file: str
    sha256: str
    copies: tuple[str, ...] = ()

    @property
    def digests(self) -> frozenset[str]:
        return frozenset((self.sha256, *self.copies))


def curated_directory() -> Path:
    """The installed directory of the shipped curated styles (what `gouache up` imports)."""
    return Path(str(files(CURATED_PACKAGE).joinpath(CURATED_DIRECTORY)))


@cache
def curated_styles() -> tuple[CuratedStyle, ...]:
    """The shipped curated styles, in the manifest's order."""
    path = curated_directory() / MANIFEST_FILE
    raw = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(raw, list):
        raise ArtifactMismatch(f"{path} must hold a JSON list of styles")
    return tuple(_curated(item, path) for item in raw)


def _curated(item: object, path: Path) -> CuratedStyle:
    if not isinstance(item, dict):
        raise ArtifactMismatch(f"{path}: every entry must be a JSON object, got {item!r}")
    try:
        return CuratedStyle(
            file=str(item["file"]),
            sha256=check_sha256(str(item["sha256"]), f"{path}: {item['file']}"),
            title=str(item["title"]),
            artist=str(item["artist"]),
            year=str(item["year"]),
            license=str(item["rights_category"]),
            rights=str(item["license_note"]),
            rights_as_of=str(item["rights_as_of"]),
            public_domain_worldwide=bool(item["public_domain_worldwide"]),
            source=f"{item['source_repo']}:{item['source_path']}@{item['source_commit']}",
            source_file=str(item["source_file"]),
            source_sha256=check_sha256(str(item["source_sha256"]), f"{path}: source of {item}"),
            width=int(item["width"]),
            height=int(item["height"]),
        )
    except KeyError as exc:
        raise ArtifactMismatch(f"{path}: an entry lacks {exc.args[0]!r}: {item}") from None


def verify_curated(directory: Path | None = None) -> dict[str, str]:
    """Checks every curated file against the manifest's sha256; returns sha256 by file."""
    where = directory or curated_directory()
    verified = {}
    for style in curated_styles():
        path = where / style.file
        if not path.is_file():
            raise ArtifactMismatch(f"{path} is missing; {MANIFEST_FILE} lists it")
        actual = file_sha256(path)
        if actual != style.sha256:
            raise ArtifactMismatch(
                f"{path} has sha256 {actual}, {MANIFEST_FILE} says {style.sha256}"
            )
        verified[style.file] = actual
    return verified


@cache
def trained_styles(name: str, *, with_copies: bool = True) -> tuple[TrainedStyle, ...]:
    """The styles model version `name` paints, when it paints only the ones it learnt.

    Empty for versions that take any style (adain, gatys). For feedforward, read from
    the version's pinned manifest (its `styles` table), each with the curated copies made
    from its file (unless `with_copies` is False: the script that makes them reads this).
    KeyError for a name the catalogue does not hold.
    """
    entry = next((entry for entry in ENTRIES if entry.name == name), None)
    if entry is None:
        raise KeyError(f"{name!r} is not in the model catalogue")
    if entry.family != "feedforward" or entry.artifact is None:
        return ()
    artifact = entry.artifact
    directory = resolve_uri(package_uri(artifact.package, artifact.directory))
    manifest = pinned_manifest(directory, artifact.manifest_sha256)
    table = manifest.get("styles")
    if not isinstance(table, list) or not table:
        raise ArtifactMismatch(f"{directory / MANIFEST_FILE} lists no trained styles")
    copies: dict[str, list[str]] = {}
    for style in curated_styles() if with_copies else ():
        copies.setdefault(style.source_sha256, []).append(style.sha256)
    trained = []
    for row in table:
        if not isinstance(row, dict):
            raise ArtifactMismatch(f"{directory / MANIFEST_FILE}: a style is not an object")
        sha256 = str(row["sha256"])
        trained.append(
            TrainedStyle(
                slot=int(row["slot"]),
                title=str(row["title"]),
                file=str(row["file"]),
                sha256=sha256,
                copies=tuple(copies.get(sha256, ())),
            )
        )
    return tuple(trained)
