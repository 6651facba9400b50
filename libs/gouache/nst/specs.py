"""Model specs, the weights files they ship with (sha256-checked), and family builders."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path, PurePosixPath
from types import MappingProxyType

import torch
from torch import Tensor

from gouache.nst.base import StyleFamily
from gouache.nst.encoders.base import FeatureEncoder
from gouache.nst.encoders.lite0 import Lite0Encoder, WeightsIntegrityError, file_sha256

_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ModelWeights:
    """One weights file shipped inside the `gouache` package, pinned by its sha256.

    `path_in_package` is relative to the `package` directory, in POSIX form
    (e.g. "weights/adain.lite0-v1/decoder.pt" under `gouache.nst`). The file is read
    only after its sha256 matches, so a truncated, tampered or swapped file is refused
    with an error naming both digests instead of painting different images.
    """

    path_in_package: str
    sha256: str
    package: str = "gouache.nst"
    description: str = ""

    def __post_init__(self) -> None:
        if not _SHA256.fullmatch(self.sha256):
            raise ValueError(
                f"{self.path_in_package}: sha256 must be 64 lowercase hex digits, got {self.sha256!r}"
            )
        parts = PurePosixPath(self.path_in_package).parts
        if not parts or PurePosixPath(self.path_in_package).is_absolute() or ".." in parts:
            raise ValueError(
                f"path_in_package must be a relative path inside {self.package}, "
                f"got {self.path_in_package!r}"
            )

    def path(self) -> Path:
        """Where the file lies in the installed package; nothing is ever downloaded."""
        return Path(str(files(self.package).joinpath(*PurePosixPath(self.path_in_package).parts)))

    def verified_path(self, path: Path | None = None) -> Path:
        """Returns the file's path once its sha256 matches; `path` overrides the location."""
        source = self.path() if path is None else path
        if not source.is_file():
            raise WeightsIntegrityError(
                f"weights file {source} is missing ({self.package}:{self.path_in_package}); "
                "reinstall the gouache package"
            )
        actual = file_sha256(source)
        if actual != self.sha256:
            raise WeightsIntegrityError(
                f"{source} has sha256 {actual}, expected {self.sha256} for "
                f"{self.package}:{self.path_in_package}; the file is damaged or not the one "
                "this model version was registered with"
            )
        return source

    def load_state_dict(self, path: Path | None = None) -> dict[str, Tensor]:
        """Checks the sha256, then loads the tensors (weights only: no pickled code runs)."""
        source = self.verified_path(path)
        state: dict[str, Tensor] = torch.load(source, map_location="cpu", weights_only=True)
        return state


@dataclass(frozen=True)
class ModelSpec:
    """One buildable model: its family, the encoder it measures with, settings and weights.

    `config` holds the family's settings (for gatys, `GatysConfig` fields) and is
    read-only once the spec exists, so a spec means the same thing for its lifetime.
    `weights` names the files a trained family loads, by role (e.g. "decoder").
    `tile_size` is the largest square the tiler should send in one request.
    """

    name: str
    family: str
    encoder: str
    tile_size: int
    description: str
    config: Mapping[str, object]
    weights: Mapping[str, ModelWeights] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "config", MappingProxyType(dict(self.config)))
        object.__setattr__(self, "weights", MappingProxyType(dict(self.weights)))


@dataclass(frozen=True)
class FamilyBuilder:
    """What a family module gives the registry: a spec check and a builder.

    `check` runs at registration, before any file is read: it raises ValueError when the
    spec's config or declared weights cannot be what the family needs. `build` turns a
    registered spec, with its loaded encoder and the target device, into a ready family.
    """

    family: str
    check: Callable[[ModelSpec], object]
    build: Callable[[ModelSpec, FeatureEncoder, torch.device], StyleFamily]


def trained_on_lite0(spec: ModelSpec, encoder: FeatureEncoder | None = None) -> Lite0Encoder | None:
    """For families whose networks were trained on Lite0 features: refuses other encoders.

    Checks the spec (at registration) and, when given, the encoder it is built with.
    """
    if spec.encoder != "lite0":
        raise ValueError(
            f"{spec.name}: the {spec.family} network was trained on Lite0 features; "
            f"encoder {spec.encoder!r} cannot drive it"
        )
    if encoder is None:
        return None
    if not isinstance(encoder, Lite0Encoder):
        raise ValueError(f"{spec.name}: needs a Lite0 encoder, got {type(encoder).__name__}")
    return encoder
