"""What inference is asked and answers: requests, results, loaded versions, and the plain
rules about them (style weights, device, batch size, warm-up images)."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from gouache.nst.base import (
    RGBImage,
    StyleFamily,
)
from gouache.runtime.errors import (
    InvalidArgument,
)

logger = logging.getLogger(__name__)

MIN_STYLES = 1
MAX_STYLES = 4
MAX_BATCH_TILES = 64


FamilyBuilder = Callable[[str, str], StyleFamily]
"""Builds the family of a registry model on a device: (model, device) -> family."""


@dataclass(frozen=True)
class Fault:
    """A failure injected into every call for one version (tests only, see settings.faults)."""

    error_rate: float = 0.0
    delay_ms: int = 0


@dataclass(frozen=True)
class RawImage:
    """Raw RGB pixels as they arrive on the wire, not yet checked."""

    width: int
    height: int
    pixels: bytes


@dataclass(frozen=True)
class RawStyle:
    """A style image and the stable key its statistics are cached under (may be empty)."""

    key: str
    image: RawImage


@dataclass(frozen=True)
class Params:
    """The request's stylization controls; None means the model version's default."""

    alpha: float | None = None
    tv_weight: float | None = None
    luminance_only: bool = False
    histogram_match: bool = False
    seed: int | None = None
    weights: tuple[float, ...] = ()


@dataclass(frozen=True)
class StylizeTask:
    """One request: images (a content, or the tiles of one content) in the same styles."""

    model_version: str
    images: tuple[RawImage, ...]
    styles: tuple[RawStyle, ...]
    params: Params
    # Whether the images are a batch of tiles ("tiles[i]" in errors) or one "content".
    tiled: bool = False


@dataclass(frozen=True)
class StylizeResult:
    """Stylized images in request order, and the time spent computing them."""

    images: list[RGBImage]
    model_version: str
    compute_ms: int


@dataclass
class LoadedModel:
    """A version held by this server; `ready` once its warm-up stylization ran.

    `version` is the name it is served under, `model` the registry model it runs (the
    same unless the configuration said `version=model`).
    """

    version: str
    model: str
    family: str
    device: str
    ready: bool = False
    tile_size: int = 0
    # Paints only its trained styles (feedforward); see LoadedModel in inference.proto.
    trained_styles_only: bool = False
    instance: StyleFamily | None = field(default=None, repr=False)


def style_weights(weights: Sequence[float], count: int) -> tuple[float, ...]:
    """The interpolation weights: equal when none are given, else checked one per style."""
    if not weights:
        return tuple(1.0 for _ in range(count))
    if len(weights) != count:
        raise InvalidArgument(
            f"got {len(weights)} weights for {count} styles; send one weight per style",
            field="params.weights",
        )
    if any(not math.isfinite(w) or w < 0.0 for w in weights) or sum(weights) <= 0.0:
        raise InvalidArgument(
            "style weights must be finite, non-negative and sum to a positive number",
            field="params.weights",
        )
    return tuple(float(w) for w in weights)


GPU_MAX_BATCH_SIZE = 8
"""The batch size `max_batch_size` 0 means on a GPU; on a CPU it means 1 (off)."""


def resolve_batch_size(requested: int, device: str) -> int:
    """The largest batch to run: `requested`, or for 0 the default of `device`.

    On the CPU the convolutions of one 512 px image already keep the cores busy, and
    batching measured no throughput gain through the service (loadtests/RESULTS.md), so
    it stays off there unless asked for; on a GPU a batch of one leaves most of the
    device idle between kernel launches, which is what batching is for.
    """
    if requested > 0:
        return requested
    return GPU_MAX_BATCH_SIZE if device == "cuda" else 1


def resolve_device(requested: str, *, cuda_available: bool) -> str:
    """The device to run on: "auto" is cuda when a GPU is visible; cuda only when present."""
    if requested == "auto":
        return "cuda" if cuda_available else "cpu"
    if requested == "cuda" and not cuda_available:
        logger.warning("device cuda was asked for but no GPU is visible; running on cpu")
        return "cpu"
    return requested


def warmup_images(side: int) -> tuple[RGBImage, RGBImage]:
    """A smooth gradient content and a striped style, generated, of side x side pixels."""
    ramp = np.linspace(0, 255, side, dtype=np.float32)
    content = np.stack(
        [np.tile(ramp, (side, 1)), np.tile(ramp[:, None], (1, side)), np.full((side, side), 128.0)],
        axis=-1,
    ).astype(np.uint8)
    stripes = (np.arange(side) // 4 % 2 * 255).astype(np.uint8)
    style = np.stack(
        [
            np.tile(stripes, (side, 1)),
            np.tile(stripes[:, None], (1, side)),
            255 - np.tile(stripes, (side, 1)),
        ],
        axis=-1,
    ).astype(np.uint8)
    return content, style
