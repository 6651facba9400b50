"""The catalogue's types: an entry per model version, its weights files, artifact and aliases."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from types import MappingProxyType
from typing import Literal, get_args

Family = Literal["gatys", "adain", "feedforward", "wct"]
Encoder = Literal["lite0", "vgg19"]

FAMILIES: tuple[Family, ...] = get_args(Family)
"""Every style family the engine implements."""

ENCODERS: tuple[Encoder, ...] = get_args(Encoder)
"""Every feature encoder the engine can load, by the registry's key."""

LIMITED_PARAMS: Mapping[str, frozenset[Family]] = {"prompt": frozenset()}
"""Job parameters only some families honour, with the families that do; every other
parameter (alpha, tv_weight, luminance_only, histogram_match, seed, weights, tiling and
output) is honoured by every family. No family takes a text prompt yet, so jobs refuses
one instead of dropping it; a family that learns to read prompts is added here."""


def honours(family: str, param: str) -> bool:
    """Whether model versions of `family` act on the job parameter `param`."""
    families = LIMITED_PARAMS.get(param)
    return families is None or family in families


MANIFEST_FILE = "manifest.json"
"""The file in an artifact directory that describes it and lists its files with sha256s."""

SHIPPING_PACKAGE = "gouache.nst"
"""The package whose `weights/` directory holds the shipped model files."""

_SHA256 = re.compile(r"[0-9a-f]{64}")


def check_sha256(value: str, what: str) -> str:
    """Returns `value` when it is 64 lowercase hex digits; ValueError naming `what` otherwise."""
    if not _SHA256.fullmatch(value):
        raise ValueError(f"{what}: sha256 must be 64 lowercase hex digits, got {value!r}")
    return value


def check_relative(path: str, what: str) -> PurePosixPath:
    """`path` as a POSIX path that stays inside its package: relative, no `..`."""
    pure = PurePosixPath(path)
    if not pure.parts or pure.is_absolute() or ".." in pure.parts:
        raise ValueError(f"{what} must be a relative path without '..', got {path!r}")
    return pure


def frozen(value: object) -> object:
    """`value` with every nested dict made a read-only mapping and every list a tuple."""
    if isinstance(value, Mapping):
        return MappingProxyType({key: frozen(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return tuple(frozen(item) for item in value)
    return value


@dataclass(frozen=True)
class WeightsFile:
    """One file a model version loads, inside an installed package, pinned by its sha256."""

    path_in_package: str
    sha256: str
    description: str = ""
    package: str = SHIPPING_PACKAGE

    def __post_init__(self) -> None:
        check_sha256(self.sha256, f"{self.package}:{self.path_in_package}")
        check_relative(self.path_in_package, f"path_in_package in {self.package}")


@dataclass(frozen=True)
class Artifact:
    """The package directory holding a version's files and the `manifest.json` listing them.

    `manifest_sha256` pins the manifest; the manifest pins every file it lists, so the
    one digest decides whether a directory holds exactly the files this version means.
    """

    directory: str
    manifest_sha256: str
    package: str = SHIPPING_PACKAGE

    def __post_init__(self) -> None:
        check_sha256(self.manifest_sha256, f"{self.package}:{self.directory}/{MANIFEST_FILE}")
        check_relative(self.directory, f"artifact directory in {self.package}")


@dataclass(frozen=True)
class CatalogueEntry:
    """One model version: what it is, how it runs, what it loads and how long a job takes.

    `encoder` is the nst registry's encoder key. `config` is the family's pinned settings
    (read-only, nested mappings included). `weights` names the files the family loads, by
    role; `artifact` is the directory they ship in (none for gatys, which has no trained
    network). `eta_seconds` is what jobs quotes per job. `operator_supplied` marks a
    version whose encoder weights do not ship: the registry adds it only where an operator
    supplies them, and jobs does not seed it.
    """

    name: str
    family: Family
    encoder: Encoder
    tile_size: int
    eta_seconds: int
    description: str
    config: Mapping[str, object]
    weights: Mapping[str, WeightsFile] = field(default_factory=dict)
    artifact: Artifact | None = None
    operator_supplied: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "config", frozen(self.config))
        object.__setattr__(self, "weights", MappingProxyType(dict(self.weights)))
        if not self.name.strip():
            raise ValueError("a catalogue entry needs a name")
        if self.family not in FAMILIES:
            raise ValueError(f"{self.name}: unknown family {self.family!r}; known: {FAMILIES}")
        if self.encoder not in ENCODERS:
            raise ValueError(f"{self.name}: unknown encoder {self.encoder!r}; known: {ENCODERS}")
        if self.tile_size <= 0 or self.eta_seconds <= 0:
            raise ValueError(f"{self.name}: tile_size and eta_seconds must be positive")
        if self.artifact is not None:
            self._check_weights_in(self.artifact)

    def _check_weights_in(self, artifact: Artifact) -> None:
        """Every weights file lies in the artifact; a pinned manifest agrees with its pin."""
        for role, weights in self.weights.items():
            path = PurePosixPath(weights.path_in_package)
            if weights.package != artifact.package or str(path.parent) != artifact.directory:
                raise ValueError(
                    f"{self.name}: weights {role!r} ({weights.package}:{path}) must lie in "
                    f"its artifact directory {artifact.package}:{artifact.directory}"
                )
            if path.name == MANIFEST_FILE and weights.sha256 != artifact.manifest_sha256:
                raise ValueError(
                    f"{self.name}: weights {role!r} pins {MANIFEST_FILE} as {weights.sha256}, "
                    f"the artifact as {artifact.manifest_sha256}"
                )


@dataclass(frozen=True)
class AliasTarget:
    """A version an alias routes to, with its share of the alias's traffic."""

    model_version: str
    weight: int
