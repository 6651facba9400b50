"""The model registry: specs built from the model catalogue, and the family builder of each."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from gouache import catalogue
from gouache.catalogue import CatalogueEntry
from gouache.nst.base import StyleFamily
from gouache.nst.encoders.base import FeatureEncoder
from gouache.nst.encoders.lite0 import WeightsIntegrityError, load_lite0
from gouache.nst.encoders.vgg19 import load_vgg19
from gouache.nst.families import adain, feedforward, gatys, wct
from gouache.nst.specs import FamilyBuilder, ModelSpec, ModelWeights

__all__ = [
    "DEFAULT",
    "FamilyBuilder",
    "ModelRegistry",
    "ModelSpec",
    "ModelWeights",
    "all_models",
    "build_family",
    "get",
    "register",
    "register_family",
    "spec_of",
]

DEFAULT = catalogue.DEFAULT

EncoderLoader = Callable[[torch.device], FeatureEncoder]

# An operator's VGG19 state dict (torchvision layout) and, optionally, its pinned sha256.
VGG19_WEIGHTS_ENV = "GOUACHE_VGG19_WEIGHTS"
VGG19_SHA256_ENV = "GOUACHE_VGG19_SHA256"


def _load_lite0(device: torch.device) -> FeatureEncoder:
    return load_lite0(device=device)


def _load_vgg19(device: torch.device) -> FeatureEncoder:
    path = os.environ.get(VGG19_WEIGHTS_ENV, "").strip()
    if not path:
        raise WeightsIntegrityError(
            f"vgg19 models need VGG19 weights: set {VGG19_WEIGHTS_ENV} to a torchvision-layout "
            "state dict (e.g. vgg19-dcbb9e9d.pth); gouache ships none"
        )
    pinned = os.environ.get(VGG19_SHA256_ENV, "").strip() or None
    return load_vgg19(Path(path), sha256=pinned, device=device)


_ENCODERS: Mapping[str, EncoderLoader] = {"lite0": _load_lite0, "vgg19": _load_vgg19}


class ModelRegistry:
    """Family builders and specs by name; refuses duplicates so a name always means one thing."""

    def __init__(self, families: Mapping[str, FamilyBuilder] | None = None) -> None:
        self._families: dict[str, FamilyBuilder] = {}
        self._specs: dict[str, ModelSpec] = {}
        self._lock = threading.Lock()
        for builder in (families or _FAMILIES).values():
            self.register_family(builder)

    def register_family(self, builder: FamilyBuilder) -> FamilyBuilder:
        """Adds the builder for `builder.family`; a family already known is refused."""
        with self._lock:
            if builder.family in self._families:
                raise ValueError(f"family {builder.family!r} is already registered")
            self._families[builder.family] = builder
        return builder

    def family(self, name: str) -> FamilyBuilder:
        """Returns the builder of family `name`; KeyError names the known families otherwise."""
        try:
            return self._families[name]
        except KeyError:
            raise KeyError(
                f"unknown family {name!r}; known families: {', '.join(sorted(self._families))}"
            ) from None

    def register(self, spec: ModelSpec) -> ModelSpec:
        """Adds `spec` after its family has checked its config and declared weights."""
        if spec.family not in self._families:
            raise ValueError(
                f"{spec.name}: unknown family {spec.family!r}; known: {sorted(self._families)}"
            )
        if spec.encoder not in _ENCODERS:
            raise ValueError(
                f"{spec.name}: unknown encoder {spec.encoder!r}; known: {sorted(_ENCODERS)}"
            )
        if spec.tile_size <= 0:
            raise ValueError(f"{spec.name}: tile_size must be positive, got {spec.tile_size}")
        self._families[spec.family].check(spec)
        with self._lock:
            if spec.name in self._specs:
                raise ValueError(f"model {spec.name!r} is already registered")
            self._specs[spec.name] = spec
        return spec

    def get(self, name: str) -> ModelSpec:
        """Returns the spec called `name`; KeyError names the known models otherwise."""
        try:
            return self._specs[name]
        except KeyError:
            known = ", ".join(sorted(self._specs)) or "none"
            raise KeyError(f"unknown model {name!r}; known models: {known}") from None

    def all_models(self) -> tuple[ModelSpec, ...]:
        """Every registered spec, sorted by name."""
        return tuple(self._specs[name] for name in sorted(self._specs))

    def build(self, name: str, *, device: str = "cpu") -> StyleFamily:
        """Loads the spec's encoder and weights on `device` and returns its family."""
        spec = self.get(name)
        target = torch.device(device)
        encoder = _ENCODERS[spec.encoder](target)
        return self._families[spec.family].build(spec, encoder, target)


_FAMILIES: Mapping[str, FamilyBuilder] = {
    builder.family: builder
    for builder in (gatys.BUILDER, adain.BUILDER, feedforward.BUILDER, wct.BUILDER)
}

_REGISTRY = ModelRegistry()


def register_family(builder: FamilyBuilder) -> FamilyBuilder:
    """Adds a family's builder to the process-wide registry (each family once)."""
    return _REGISTRY.register_family(builder)


def register(spec: ModelSpec) -> ModelSpec:
    """Adds `spec` to the process-wide registry; a name already taken is refused."""
    return _REGISTRY.register(spec)


def get(name: str) -> ModelSpec:
    """Looks up a registered spec by name (KeyError lists the known names)."""
    return _REGISTRY.get(name)


def family(name: str) -> FamilyBuilder:
    """The builder registered for family `name` (KeyError lists the known families)."""
    return _REGISTRY.family(name)


def all_models() -> tuple[ModelSpec, ...]:
    """Every registered spec, sorted by name."""
    return _REGISTRY.all_models()


def build_family(name: str, *, device: str = "cpu") -> StyleFamily:
    """Loads the spec's encoder (and weights) on `device` and returns its family, ready."""
    return _REGISTRY.build(name, device=device)


def spec_of(entry: CatalogueEntry) -> ModelSpec:
    """The registry's spec of a catalogue entry: same name, family, encoder, tile, config, files."""
    return ModelSpec(
        name=entry.name,
        family=entry.family,
        encoder=entry.encoder,
        tile_size=entry.tile_size,
        description=entry.description,
        config=entry.config,
        weights={
            role: ModelWeights(
                path_in_package=weights.path_in_package,
                sha256=weights.sha256,
                package=weights.package,
                description=weights.description,
            )
            for role, weights in entry.weights.items()
        },
    )


for _entry in catalogue.entries():
    register(spec_of(_entry))


# Gatys on VGG19 features is in the catalogue, flagged operator-supplied: registered only
# where an operator supplies the VGG19 weights (GOUACHE_VGG19_WEIGHTS), since none ship.
GATYS_VGG19_V1 = spec_of(catalogue.get("gatys.vgg19-v1"))

if os.environ.get(VGG19_WEIGHTS_ENV, "").strip():
    register(GATYS_VGG19_V1)
