"""The model registry: named, immutable specs, and the family builder each one is built with."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from gouache.nst.base import StyleFamily
from gouache.nst.encoders.base import FeatureEncoder
from gouache.nst.encoders.lite0 import WeightsIntegrityError, load_lite0
from gouache.nst.encoders.vgg19 import load_vgg19
from gouache.nst.families import adain, feedforward, gatys
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
]

DEFAULT = "gatys.lite0-v1"

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
    builder.family: builder for builder in (gatys.BUILDER, adain.BUILDER, feedforward.BUILDER)
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


# Pinned rather than inherited from GatysConfig, so tuning its defaults later cannot
# change what an existing model version paints.
_GATYS_LITE0_V1: Mapping[str, object] = {
    "style_taps": {"b1": 1.0, "b3": 1.0, "b5": 1.0, "b8": 1.0, "b11": 1.0},
    "content_tap": "b8",
    "style_weight": 10.0,
    "content_weight": 10.0,
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
        config=_GATYS_LITE0_V1,
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
        config={**_GATYS_LITE0_V1, "steps": 40, "max_side": 256},
    )
)


# Pinned like gatys: the shape of the decoder and how it is used, trained and exported by
# `gouache train adain --config configs/adain.lite0-v1.yaml` (see the manifest.json beside
# the weights for the training run, its data and its measured quality).
_ADAIN_LITE0_V1: Mapping[str, object] = {
    "tap": "b3",
    "decoder_widths": (96, 48, 16),
    "decoder_convs": (2, 1, 1),
    "eps": 1e-5,
    "style_side": 512,
    "max_side": 2048,
    "tv_weight": 0.0,
    "style_cache_size": 32,
}


register(
    ModelSpec(
        name="adain.lite0-v1",
        family="adain",
        encoder="lite0",
        tile_size=512,
        description="AdaIN over EfficientNet-Lite0 block 3 with the project's decoder: any "
        "style in one forward pass (decoder trained 28 min on one CPU thread at 128 px)",
        config=_ADAIN_LITE0_V1,
        weights={
            "decoder": ModelWeights(
                path_in_package="weights/adain.lite0-v1/decoder.pt",
                sha256="7be98a7e65dd3ba833e0d37c8d49d548c38539b02c04bcfda4e2a9740e1cb015",
                description="decoder state dict, float16",
            )
        },
    )
)


# Trained by `gouache train feedforward --config configs/feedforward.lite0-v1.yaml` on CPU
# at 128 px crops; the manifest beside the weights lists its eight styles (title, file,
# sha256), the training run, its data and its measured quality.
register(
    ModelSpec(
        name="feedforward.lite0-v1",
        family="feedforward",
        encoder="lite0",
        tile_size=512,
        description="One conditional-instance-norm network for eight curated styles: the "
        "fastest family, only its trained styles (trained on CPU at reduced resolution)",
        config={"max_side": 1024, "style_cache_size": 256},
        weights=feedforward.model_weights(
            "weights/feedforward.lite0-v1",
            {
                "manifest": "51c1b085a371c1b0b8d1e94ba04134ad2abf4e262b4f8895e0350752008b8150",
                "network": "35decee7d82cdb7f93fa50beca6d0941d2c1b0c3386d55f4f7cb6f621772ed32",
                "style_index": "8892b60bf7d29346d0be81b776f103a50de429c947fb686843aad48d23dcbed3",
            },
        ),
    )
)


# Gatys on VGG19 features, the original paper's choice: registered only where an operator
# supplies the weights (GOUACHE_VGG19_WEIGHTS), since none ship. Its balance is Lite0 v1's
# and was not measured on real VGG19 weights (none are available to this project).
GATYS_VGG19_V1 = ModelSpec(
    name="gatys.vgg19-v1",
    family="gatys",
    encoder="vgg19",
    tile_size=512,
    description="Gatys optimisation over VGG19 Gram statistics with operator-supplied weights "
    f"({VGG19_WEIGHTS_ENV})",
    config={
        **_GATYS_LITE0_V1,
        "style_taps": {
            "relu1_1": 1.0,
            "relu2_1": 1.0,
            "relu3_1": 1.0,
            "relu4_1": 1.0,
            "relu5_1": 1.0,
        },
        "content_tap": "relu4_2",
    },
)

if os.environ.get(VGG19_WEIGHTS_ENV, "").strip():
    register(GATYS_VGG19_V1)
