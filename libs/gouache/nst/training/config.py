"""Training configs from YAML: frozen dataclasses, every key and value checked with its path."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

import yaml

from gouache.nst.encoders.lite0 import LITE0_TAPS
from gouache.nst.families.adain import TAP_GEOMETRY, AdainConfig

T = TypeVar("T")


class ConfigError(ValueError):
    """A training config that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class DataConfig:
    """How training images are read and cropped.

    image_size: side of the square crops the networks train on.
    load_side: images are resized once, at load, so their short side is this; crops
        are then taken from that copy (keeps memory small and crops at a known scale).
    crop_scale: a crop's side is drawn uniformly in this range, as a fraction of the
        loaded image's short side, then resized to `image_size`.
    flip: mirror crops left-right with probability one half.
    batch_size: crops per step (contents; as many styles).
    holdout_fraction: share of the content and of the style images kept out of
        training to measure the held-out loss that early stopping watches.
    holdout_batches: fixed held-out batches measured at every evaluation.
    """

    image_size: int = 160
    load_side: int = 256
    crop_scale: tuple[float, float] = (0.5, 1.0)
    flip: bool = True
    batch_size: int = 4
    holdout_fraction: float = 0.1
    holdout_batches: int = 4

    def __post_init__(self) -> None:
        _positive("data.image_size", self.image_size, minimum=16)
        _positive("data.load_side", self.load_side, minimum=self.image_size)
        low, high = self.crop_scale
        if not 0.0 < low <= high <= 1.0:
            raise ConfigError(
                f"data.crop_scale must satisfy 0 < low <= high <= 1, got {low}, {high}"
            )
        _positive("data.batch_size", self.batch_size)
        if not 0.0 < self.holdout_fraction < 1.0:
            raise ConfigError(
                f"data.holdout_fraction must be between 0 and 1, got {self.holdout_fraction}"
            )
        _positive("data.holdout_batches", self.holdout_batches)


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with a linear warm-up, then a cosine decay to `min_lr_ratio` of the peak.

    max_steps: the schedule's length; training stops there at the latest.
    grad_clip: largest gradient norm (0 disables clipping).
    """

    lr: float = 1e-3
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 100
    max_steps: int = 4000
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0

    def __post_init__(self) -> None:
        if not self.lr > 0.0:
            raise ConfigError(f"optim.lr must be positive, got {self.lr}")
        if self.weight_decay < 0.0:
            raise ConfigError(
                f"optim.weight_decay must be zero or positive, got {self.weight_decay}"
            )
        if not all(0.0 <= beta < 1.0 for beta in self.betas):
            raise ConfigError(f"optim.betas must lie in [0, 1), got {self.betas}")
        _positive("optim.max_steps", self.max_steps)
        if not 0 <= self.warmup_steps < self.max_steps:
            raise ConfigError(
                f"optim.warmup_steps must be in [0, max_steps={self.max_steps}), "
                f"got {self.warmup_steps}"
            )
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ConfigError(f"optim.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.grad_clip < 0.0:
            raise ConfigError(f"optim.grad_clip must be zero or positive, got {self.grad_clip}")


@dataclass(frozen=True)
class RunConfig:
    """The loop around the optimiser: evaluation, early stopping, checkpoints, logging.

    eval_every: steps between held-out evaluations (early stopping counts these).
    patience: evaluations without an improvement of at least `min_delta` (relative to
        the best held-out loss) before training stops early.
    checkpoint_every: steps between checkpoints (one more is written when training ends).
    log_every: steps between JSONL loss records.
    threads: torch intra-op threads on the CPU (1 lets two trainings share two cores).
    device: "auto" (CUDA when present), "cpu" or "cuda".
    amp: mixed precision (float16 autocast with loss scaling); only ever used on CUDA.
    """

    eval_every: int = 100
    patience: int = 8
    min_delta: float = 0.002
    checkpoint_every: int = 200
    log_every: int = 10
    threads: int = 1
    device: str = "auto"
    amp: bool = True

    def __post_init__(self) -> None:
        for name in ("eval_every", "patience", "checkpoint_every", "log_every", "threads"):
            _positive(f"run.{name}", getattr(self, name))
        if not 0.0 <= self.min_delta < 1.0:
            raise ConfigError(f"run.min_delta must be in [0, 1), got {self.min_delta}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"run.device must be auto, cpu or cuda, got {self.device!r}")


def _default_style_taps() -> dict[str, float]:
    return {"stem": 1.0, "b1": 1.0, "b3": 1.0, "b5": 1.0}


@dataclass(frozen=True)
class AdainLossConfig:
    """The AdaIN decoder's objective; every term is relative to its target's scale.

    content_weight: features of the decoded image at the tap vs the AdaIN target.
    style_weight, style_taps: per tap, the decoded image's feature statistics vs the
        style's (`style_loss` "meanstd": channel means and stds; "gram": Gram matrices).
    tv_weight: quadratic total variation of the decoded image.
    identity_weight: decoding the content's own features must give the content back
        (pixel mean squared error); this is what makes alpha 0 reproduce the content.
    colour_weight: the decoded image's per-channel pixel mean and std vs the style's.
    """

    content_weight: float = 1.0
    style_weight: float = 1.0
    style_taps: Mapping[str, float] = field(default_factory=_default_style_taps)
    style_loss: str = "meanstd"
    tv_weight: float = 1.0
    identity_weight: float = 1.0
    colour_weight: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "style_taps", types.MappingProxyType(dict(self.style_taps)))
        for name in ("content_weight", "style_weight", "tv_weight", "identity_weight"):
            if getattr(self, name) < 0.0:
                raise ConfigError(
                    f"loss.{name} must be zero or positive, got {getattr(self, name)}"
                )
        if self.colour_weight < 0.0:
            raise ConfigError(
                f"loss.colour_weight must be zero or positive, got {self.colour_weight}"
            )
        unknown = set(self.style_taps).difference(LITE0_TAPS)
        if unknown:
            raise ConfigError(f"loss.style_taps: unknown taps {sorted(unknown)}")
        if not self.style_taps or any(w <= 0.0 for w in self.style_taps.values()):
            raise ConfigError("loss.style_taps needs at least one tap, each with a positive weight")
        if self.style_loss not in ("meanstd", "gram"):
            raise ConfigError(f"loss.style_loss must be meanstd or gram, got {self.style_loss!r}")


class RecordedConfig:
    """What every training run's config offers: its plain form for the exported manifest, and
    the digest that lets a checkpoint resume only under the same config."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values, as recorded in the exported model's manifest."""
        values: dict[str, Any] = plain(self)
        return values

    def digest(self) -> str:
        """sha256 of the canonical JSON form: a checkpoint resumes only under the same config."""
        return config_digest(self)


@dataclass(frozen=True)
class AdainTrainConfig(RecordedConfig):
    """A whole AdaIN training run: the model to export, its objective and the loop."""

    name: str
    model: AdainConfig
    loss: AdainLossConfig = field(default_factory=AdainLossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)
    seed: int = 0
    family: str = "adain"

    def __post_init__(self) -> None:
        if self.family != "adain":
            raise ConfigError(f"family must be adain for this trainer, got {self.family!r}")
        if not self.name.startswith("adain.") or "/" in self.name or len(self.name) < 7:
            raise ConfigError(f"name must look like adain.<encoder>-<version>, got {self.name!r}")
        if self.model.tap not in TAP_GEOMETRY:
            raise ConfigError(f"model.tap: unknown tap {self.model.tap!r}")
        if self.data.image_size % self.model.stride:
            raise ConfigError(
                f"data.image_size ({self.data.image_size}) must be a multiple of the tap's "
                f"stride ({self.model.stride})"
            )


def config_digest(config: object) -> str:
    """sha256 of a config's canonical JSON form."""
    return hashlib.sha256(json.dumps(plain(config), sort_keys=True).encode()).hexdigest()


def load_yaml_config(path: Path, parse: Callable[[object], T]) -> T:
    """Reads a YAML training config and parses it; ConfigError names the file and bad key."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"{path}: cannot read the config: {error}") from error
    try:
        return parse(raw)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def load_adain_config(path: Path) -> AdainTrainConfig:
    """Reads and checks a YAML AdaIN training config; ConfigError names the bad key."""
    return load_yaml_config(path, parse_adain_config)


def parse_adain_config(raw: object) -> AdainTrainConfig:
    """Builds the config from already-parsed YAML (a mapping); ConfigError otherwise."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"the config must be a mapping, got {type(raw).__name__}")
    if "model" not in raw:
        raise ConfigError("model is required (at least its tap)")
    return build_section(AdainTrainConfig, raw, "")


def build_section(cls: type[T], raw: object, where: str) -> T:
    """Builds dataclass `cls` from a mapping, checking keys and value types recursively.

    Nested dataclass fields take nested mappings; tuples take YAML lists; ints are
    accepted where floats are expected; anything else must have the declared type.
    """
    if dataclasses.is_dataclass(raw) and isinstance(raw, cls):
        return raw
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where or 'the config'} must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    unknown = set(raw).difference(known)
    if unknown:
        raise ConfigError(f"unknown keys {sorted(map(str, unknown))} in {where or 'the config'}")
    values: dict[str, object] = {}
    for name, value in raw.items():
        path = f"{where}.{name}" if where else str(name)
        values[name] = _coerce(hints[name], value, path)
    try:
        return cls(**values)
    except ConfigError:
        raise
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{where or 'the config'}: {error}") from None


def _coerce(hint: Any, value: object, path: str) -> object:
    origin = typing.get_origin(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return build_section(hint, value, path)
    if origin is tuple:
        items = typing.get_args(hint)
        if len(items) == 2 and items[1] is Ellipsis:
            if not isinstance(value, list | tuple) or not value:
                raise ConfigError(f"{path} must be a non-empty list, got {value!r}")
            return tuple(
                _coerce(items[0], element, f"{path}[{i}]") for i, element in enumerate(value)
            )
        if not isinstance(value, list | tuple) or len(value) != len(items):
            raise ConfigError(f"{path} must be a list of {len(items)} values, got {value!r}")
        return tuple(
            _coerce(item, element, f"{path}[{i}]")
            for i, (item, element) in enumerate(zip(items, value, strict=True))
        )
    if origin in (Mapping, dict):
        key_type, value_type = typing.get_args(hint)
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path} must be a mapping, got {value!r}")
        return {
            _coerce(key_type, key, f"{path} key"): _coerce(value_type, item, f"{path}.{key}")
            for key, item in value.items()
        }
    if hint is float:
        # YAML 1.1 reads 1e-5 (no dot) as a string; a number written that way is meant.
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise ConfigError(f"{path} must be a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path} must be a number, got {value!r}")
        return float(value)
    if hint in (int, bool, str):
        if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
            raise ConfigError(f"{path} must be {hint.__name__}, got {value!r}")
        return value
    raise ConfigError(f"{path}: unsupported type {hint!r}")


def _positive(path: str, value: int, *, minimum: int = 1) -> None:
    if value < minimum:
        raise ConfigError(f"{path} must be at least {minimum}, got {value}")


def plain(value: object) -> Any:
    """Dataclasses, mappings and sequences as plain JSON-ready values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value
