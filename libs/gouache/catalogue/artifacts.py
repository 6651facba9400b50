"""Artifact directories: where a URI points, and whether the files there are the pinned ones."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from importlib.resources import files
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from gouache.catalogue.model import MANIFEST_FILE, check_sha256

PACKAGE_SCHEME = "package"
_PACKAGE_NAME = re.compile(r"gouache(\.[A-Za-z_][A-Za-z0-9_]*)*")


class ArtifactMismatch(ValueError):
    """An artifact directory is not the one its pins describe (missing, altered or swapped)."""


class ArtifactUriError(ValueError):
    """A URI that does not name an artifact directory this library can read."""


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file's bytes."""
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def package_uri(package: str, path: str) -> str:
    """The `package://<package>/<path>` URI of a directory inside an installed package."""
    return f"{PACKAGE_SCHEME}://{package}/{path}"


def resolve_uri(uri: str) -> Path:
    """The local directory a `package://<package>/<path>` URI names.

    Only packages of gouache (`gouache` and its subpackages) are looked in, since finding
    a package imports it. Other schemes are refused; `s3://` is planned, not supported yet.
    """
    parts = urlsplit(uri)
    if parts.scheme == "s3":
        raise ArtifactUriError(
            f"{uri}: s3:// artifacts are planned but not supported yet; "
            "use package://<package>/<path>"
        )
    if parts.scheme != PACKAGE_SCHEME:
        raise ArtifactUriError(
            f"{uri}: unsupported scheme {parts.scheme or '(none)'!r}; "
            "artifacts are named package://<package>/<path>"
        )
    if parts.query or parts.fragment or not _PACKAGE_NAME.fullmatch(parts.netloc):
        raise ArtifactUriError(
            f"{uri}: expected package://<package>/<path> with a gouache package "
            f"(e.g. package://gouache.nst/weights/adain.lite0-v1)"
        )
    relative = PurePosixPath(parts.path.lstrip("/"))
    if not relative.parts or ".." in relative.parts:
        raise ArtifactUriError(f"{uri}: the path must be non-empty and may not contain '..'")
    return _directory_in(parts.netloc, relative, uri)


def _directory_in(package: str, relative: PurePosixPath, uri: str) -> Path:
    try:
        root = files(package)
    except ModuleNotFoundError:
        raise ArtifactUriError(f"{uri}: no installed package {package!r}") from None
    directory = Path(str(root.joinpath(*relative.parts)))
    if not directory.is_dir():
        raise ArtifactUriError(f"{uri}: {directory} is not a directory")
    return directory


def verify_artifact(directory: Path, *, manifest_sha256: str, family: str) -> dict[str, str]:
    """Checks an artifact directory against its pinned manifest; returns sha256 by file.

    The manifest's own sha256 must be `manifest_sha256`, its `family` must be `family`,
    and every file in its `files` table must exist with the sha256 recorded there (the
    table maps a name to a digest, or to an object with "sha256"). Raises ArtifactMismatch
    naming the first thing that differs; reads no weights, imports no ML library.
    """
    check_sha256(manifest_sha256, f"{directory}/{MANIFEST_FILE}")
    manifest = _pinned_manifest(directory, manifest_sha256)
    if manifest.get("family") != family:
        raise ArtifactMismatch(
            f"{directory / MANIFEST_FILE} is for family {manifest.get('family')!r}, "
            f"expected {family!r}"
        )
    verified = {MANIFEST_FILE: manifest_sha256}
    for name, expected in _listed_files(directory, manifest).items():
        verified[name] = _checked_file(directory, name, expected)
    return verified


def pinned_manifest(directory: Path, manifest_sha256: str) -> Mapping[str, object]:
    """The JSON object of `directory`'s manifest, once its bytes match the pin.

    Reads only the manifest (not the files it lists); ArtifactMismatch otherwise.
    """
    return _pinned_manifest(directory, manifest_sha256)


def _pinned_manifest(directory: Path, manifest_sha256: str) -> Mapping[str, object]:
    """The manifest's JSON object, once its bytes match the pin."""
    path = directory / MANIFEST_FILE
    if not path.is_file():
        raise ArtifactMismatch(f"{directory} has no {MANIFEST_FILE}")
    actual = file_sha256(path)
    if actual != manifest_sha256:
        raise ArtifactMismatch(
            f"{path} has sha256 {actual}, expected {manifest_sha256}; the directory holds "
            "another version's files, or they were altered"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactMismatch(f"{path} is not JSON: {exc}") from None
    if not isinstance(manifest, dict):
        raise ArtifactMismatch(f"{path} is not a JSON object")
    return manifest


def _listed_files(directory: Path, manifest: Mapping[str, object]) -> dict[str, str]:
    """The manifest's `files` table as name -> sha256, in either shape the trainers write."""
    table = manifest.get("files")
    path = directory / MANIFEST_FILE
    if not isinstance(table, dict) or not table:
        raise ArtifactMismatch(f"{path} lists no files")
    listed: dict[str, str] = {}
    for name, entry in table.items():
        digest = entry.get("sha256") if isinstance(entry, dict) else entry
        if not isinstance(digest, str):
            raise ArtifactMismatch(f"{path} records no sha256 for {name!r}")
        pure = PurePosixPath(name)
        if len(pure.parts) != 1 or name in (".", "..") or name == MANIFEST_FILE:
            raise ArtifactMismatch(f"{path} lists {name!r}, which is not a file beside it")
        listed[name] = digest
    return listed


def _checked_file(directory: Path, name: str, expected: str) -> str:
    path = directory / name
    if not path.is_file():
        raise ArtifactMismatch(f"{path} is missing; {MANIFEST_FILE} lists it")
    actual = file_sha256(path)
    if actual != expected:
        raise ArtifactMismatch(f"{path} has sha256 {actual}, but {MANIFEST_FILE} lists {expected}")
    return actual
