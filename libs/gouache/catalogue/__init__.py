"""The model catalogue: every model version and alias, in one torch-free place everything reads."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from gouache.catalogue.artifacts import (
    ArtifactMismatch,
    ArtifactUriError,
    file_sha256,
    package_uri,
    resolve_uri,
    verify_artifact,
)
from gouache.catalogue.curated import (
    CuratedStyle,
    TrainedStyle,
    curated_directory,
    curated_styles,
    trained_styles,
    verify_curated,
)
from gouache.catalogue.model import (
    ENCODERS,
    FAMILIES,
    LIMITED_PARAMS,
    MANIFEST_FILE,
    AliasTarget,
    Artifact,
    CatalogueEntry,
    Encoder,
    Family,
    WeightsFile,
    honours,
)
from gouache.catalogue.shipped import ALIASES, DEFAULT, ENTRIES

__all__ = [
    "DEFAULT",
    "ENCODERS",
    "FAMILIES",
    "LIMITED_PARAMS",
    "MANIFEST_FILE",
    "AliasTarget",
    "Artifact",
    "ArtifactMismatch",
    "ArtifactUriError",
    "CatalogueEntry",
    "CuratedStyle",
    "Encoder",
    "Family",
    "TrainedStyle",
    "WeightsFile",
    "aliases",
    "artifact_uri",
    "curated_directory",
    "curated_styles",
    "entries",
    "get",
    "honours",
    "jobs_seed",
    "names",
    "resolve_uri",
    "trained_styles",
    "verify_artifact",
    "verify_curated",
    "verify_entry",
]


def _index(catalogue: tuple[CatalogueEntry, ...]) -> dict[str, CatalogueEntry]:
    """Entries by name, once the names are unique and every alias routes to a shipped one."""
    by_name: dict[str, CatalogueEntry] = {}
    for entry in catalogue:
        if entry.name in by_name:
            raise ValueError(f"model version {entry.name!r} is in the catalogue twice")
        by_name[entry.name] = entry
    for alias, targets in ALIASES.items():
        if alias in by_name:
            raise ValueError(f"alias {alias!r} shadows a model version")
        for target in targets:
            found = by_name.get(target.model_version)
            if found is None or found.operator_supplied or target.weight < 0:
                raise ValueError(f"alias {alias!r} routes to {target}, not a shipped version")
    return by_name


_BY_NAME = _index(ENTRIES)


def get(name: str) -> CatalogueEntry:
    """The entry called `name`; KeyError names the known versions otherwise."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(
            f"unknown model version {name!r}; known versions: {', '.join(_BY_NAME)}"
        ) from None


def entries(*, operator_supplied: bool = False) -> tuple[CatalogueEntry, ...]:
    """Shipped entries in load order; with `operator_supplied`, operator-added ones too."""
    return tuple(e for e in ENTRIES if operator_supplied or not e.operator_supplied)


def names(*, operator_supplied: bool = False) -> tuple[str, ...]:
    """The names of `entries()`, in the same order (what inference loads by default)."""
    return tuple(entry.name for entry in entries(operator_supplied=operator_supplied))


def aliases() -> Mapping[str, tuple[AliasTarget, ...]]:
    """Every alias with the versions it routes to and their weights."""
    return dict(ALIASES)


def artifact_uri(entry: CatalogueEntry) -> str | None:
    """`package://<package>/<directory>` of the entry's files; None when it ships none."""
    if entry.artifact is None:
        return None
    return package_uri(entry.artifact.package, entry.artifact.directory)


def verify_entry(entry: CatalogueEntry, directory: Path | None = None) -> dict[str, str]:
    """Checks an entry's artifact (the shipped one, or `directory`) and its pinned weights.

    Returns sha256 by file name; raises ArtifactMismatch naming what differs, or
    ValueError when the entry has no artifact.
    """
    artifact = entry.artifact
    if artifact is None:
        raise ValueError(f"{entry.name} has no artifact to verify (family {entry.family})")
    where = directory or resolve_uri(package_uri(artifact.package, artifact.directory))
    verified = verify_artifact(where, manifest_sha256=artifact.manifest_sha256, family=entry.family)
    for role, weights in entry.weights.items():
        name = PurePosixPath(weights.path_in_package).name
        actual = verified.get(name) or _sha256_if_present(where / name)
        if actual != weights.sha256:
            raise ArtifactMismatch(
                f"{where / name} ({entry.name} weights {role!r}) has sha256 "
                f"{actual or '(missing)'}, the catalogue pins {weights.sha256}"
            )
        verified[name] = actual
    return verified


def _sha256_if_present(path: Path) -> str:
    return file_sha256(path) if path.is_file() else ""


def jobs_seed() -> dict[str, Any]:
    """The jobs service's `seed_models` setting: shipped versions (with eta) and the aliases."""
    return {
        "versions": [
            {
                "name": entry.name,
                "family": entry.family,
                "encoder": entry.encoder,
                "tile_size": entry.tile_size,
                "config": {"eta_seconds": entry.eta_seconds},
                "description": entry.description,
            }
            for entry in entries()
        ],
        "routes": {
            alias: [{"model_version": t.model_version, "weight": t.weight} for t in targets]
            for alias, targets in ALIASES.items()
        },
    }
