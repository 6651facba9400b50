"""The model registry: named, immutable specs of the models this code can build, and a builder."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import torch

from gouache.nst.base import StyleFamily
from gouache.nst.encoders.lite0 import Lite0Encoder, load_lite0
from gouache.nst.families.gatys import GatysConfig, GatysFamily

DEFAULT = "gatys.lite0-v1"

EncoderLoader = Callable[[torch.device], Lite0Encoder]
FamilyBuilder = Callable[["ModelSpec", Lite0Encoder, torch.device], StyleFamily]


@dataclass(frozen=True)
class ModelSpec:
    """One buildable model: its family, the encoder it measures with, and its settings.

    `config` holds the family's settings (for gatys, `GatysConfig` fields) and is
    read-only once the spec exists, so a spec means the same thing for its lifetime.
    `tile_size` is the largest square the tiler should send in one request.
    """

    name: str
    family: str
    encoder: str
    tile_size: int
    description: str
    config: Mapping[str, object]

    def __post_init__(self) -> None:
        object.__setattr__(self, "config", MappingProxyType(dict(self.config)))


def _load_lite0(device: torch.device) -> Lite0Encoder:
    return load_lite0(device=device)


def _build_gatys(spec: ModelSpec, encoder: Lite0Encoder, device: torch.device) -> StyleFamily:
    return GatysFamily(GatysConfig.from_mapping(spec.config), encoder, device=device)


_ENCODERS: Mapping[str, EncoderLoader] = {"lite0": _load_lite0}
_FAMILIES: Mapping[str, FamilyBuilder] = {"gatys": _build_gatys}
_CONFIG_CHECKS: Mapping[str, Callable[[Mapping[str, object]], object]] = {
    "gatys": GatysConfig.from_mapping,
}


class ModelRegistry:
    """Specs by name; refuses duplicates so a name always means one model."""

    def __init__(self) -> None:
        self._specs: dict[str, ModelSpec] = {}
        self._lock = threading.Lock()

    def register(self, spec: ModelSpec) -> ModelSpec:
        """Adds `spec` after checking its family, encoder and config can be built."""
        if spec.family not in _FAMILIES:
            raise ValueError(
                f"{spec.name}: unknown family {spec.family!r}; known: {sorted(_FAMILIES)}"
            )
        if spec.encoder not in _ENCODERS:
            raise ValueError(
                f"{spec.name}: unknown encoder {spec.encoder!r}; known: {sorted(_ENCODERS)}"
            )
        if spec.tile_size <= 0:
            raise ValueError(f"{spec.name}: tile_size must be positive, got {spec.tile_size}")
        _CONFIG_CHECKS[spec.family](spec.config)
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


_REGISTRY = ModelRegistry()


def register(spec: ModelSpec) -> ModelSpec:
    """Adds `spec` to the process-wide registry; a name already taken is refused."""
    return _REGISTRY.register(spec)


def get(name: str) -> ModelSpec:
    """Looks up a registered spec by name (KeyError lists the known names)."""
    return _REGISTRY.get(name)


def all_models() -> tuple[ModelSpec, ...]:
    """Every registered spec, sorted by name."""
    return _REGISTRY.all_models()


def build_family(name: str, *, device: str = "cpu") -> StyleFamily:
    """Loads the spec's encoder on `device` and returns its family, ready to stylize."""
    spec = get(name)
    target = torch.device(device)
    encoder = _ENCODERS[spec.encoder](target)
    return _FAMILIES[spec.family](spec, encoder, target)


# Pinned rather than inherited from GatysConfig, so tuning its defaults later cannot
# change what an existing model version paints.
_LITE0_V1: Mapping[str, object] = {
    "style_taps": {"b1": 1.0, "b3": 1.0, "b5": 1.0, "b8": 1.0, "b11": 1.0},
    "content_tap": "b8",
    "style_weight": 10.0,
    "content_weight": 1.0,
    "tv_weight": 30.0,
    "steps": 200,
    "refine_steps": 100,
    "learning_rate": 0.02,
    "max_side": 1024,
    "coarse_to_fine_threshold": 512,
    "init_noise": 0.1,
    "style_cache_size": 32,
}


register(
    ModelSpec(
        name=DEFAULT,
        family="gatys",
        encoder="lite0",
        tile_size=512,
        description="Gatys optimisation over EfficientNet-Lite0 Gram statistics; "
        "production defaults (highest fidelity, slowest)",
        config=_LITE0_V1,
    )
)
register(
    ModelSpec(
        name="gatys.lite0-fast",
        family="gatys",
        encoder="lite0",
        tile_size=256,
        description="Gatys with few steps at a capped size: a visibly stylized 256 px "
        "image in seconds on two CPU cores; for tests and the CPU demo",
        config={**_LITE0_V1, "steps": 40, "max_side": 256},
    )
)
