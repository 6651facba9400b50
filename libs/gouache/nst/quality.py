"""Quality metrics on Lite0 (style and content distance) and the histogram-matching baseline.

Both distances are measured with the frozen, pretrained EfficientNet-Lite0 encoder
(`gouache.nst.encoders.lite0`), on float RGB in [0, 1], at a fixed evaluation size so a
number means the same thing whatever size the images came in:

Evaluation size. An image is resized, aspect ratio kept, so that its long side is
`EVAL_SIDE` (256) pixels, with antialiased bilinear filtering
(`torch.nn.functional.interpolate(..., mode="bilinear", antialias=True)`).

Style distance of an image x to a style image s::

    style(x, s) = mean over t in STYLE_TAPS of  ||G_t(x) - G_t(s)||_F / ||G_t(s)||_F

where x and s are each taken at the evaluation size, `STYLE_TAPS` are the Lite0 block
outputs b1, b3, b5, b8 and b11 (the taps the gatys family matches), and G_t is the Gram
matrix of the tap's activations divided by C*H*W (`gouache.nst.losses.gram`), which
makes Gram matrices of images with different aspect ratios comparable. 0 means the
same feature co-occurrence statistics as the style; an unrelated photo typically
scores around 1 (its statistics differ from the style's by about their own size).

Content distance of an image x to the content image c::

    content(x, c) = ||F(x') - F(c)||_F / ||F(c)||_F

where F is the activation at `CONTENT_TAP` (b8, stride 16, 80 channels), c is taken at
the evaluation size and x' is x resized to exactly that size (stylized outputs have
the content's size anyway). 0 means identical features; a result with unrelated
features of the same magnitude scores about sqrt(2).

The independent judge. Gatys optimises exactly these Lite0 distances and the one-pass
families are trained on Lite0 losses, so Lite0 numbers flatter them. `lite1_meter`
measures the same two distances with EfficientNet-Lite1 (`gouache.nst.encoders.lite1`),
a network no gouache model trains or optimises on, at the taps that end the same
stages: style on `LITE1_STYLE_TAPS` (b1, b4, b7, b11, b15), content at
`LITE1_CONTENT_TAP` (b11, stride 16, 80 channels). Its numbers are not comparable to
Lite0's in absolute terms, only as ratios to the baseline measured on the same judge.

Both metrics are deterministic for a given encoder and input (no randomness, float32
on the CPU); `QualityMeter` caches each style's Gram matrices so a grid of pairs does
not recompute them.

The baseline any style-transfer model must beat is colour transfer alone:
`histogram_baseline(content, style)` recolours the content so that each RGB channel has
the style's distribution (`gouache.imaging.color.match_histogram(source=content,
reference=style)`), changing colours but no texture.
"""

from __future__ import annotations

import statistics
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gouache.imaging.color import luminance_transfer, match_histogram, to_float32, to_uint8
from gouache.nst.base import Cancellation, RGBImage, StylizeControls, validate_request
from gouache.nst.encoders.lite0 import Lite0Encoder, load_lite0
from gouache.nst.encoders.lite1 import load_lite1
from gouache.nst.losses import gram
from gouache.nst.pixels import pixels_key, resize_long_side, resize_to, to_tensor

STYLE_TAPS: tuple[str, ...] = ("b1", "b3", "b5", "b8", "b11")
"""Lite0 taps whose Gram matrices define the style distance."""

CONTENT_TAP = "b8"
"""The Lite0 tap whose activations define the content distance."""

LITE1_STYLE_TAPS: tuple[str, ...] = ("b1", "b4", "b7", "b11", "b15")
"""Lite1's taps for the judge's style distance: the ends of the stages Lite0's end at."""

LITE1_CONTENT_TAP = "b11"
"""Lite1's tap for the judge's content distance: stage 4's end, like Lite0's b8."""

EVAL_SIDE = 256
"""Long side, in pixels, at which every image is measured."""

BASELINE_NAME = "baseline.histogram"
"""The name the histogram-matching baseline goes by in tables and contact sheets."""

_STYLE_CACHE_SIZE = 64


@dataclass(frozen=True)
class Distances:
    """The two distances of one stylized output (see the module docstring)."""

    style: float
    content: float


class QualityMeter:
    """Measures style and content distances on a frozen Lite encoder, at `side` pixels.

    Lite0 at `STYLE_TAPS` and `CONTENT_TAP` unless told otherwise (`lite1_meter` is the
    independent judge). Thread-safe; keeps the Gram matrices of the last styles it saw
    (keyed by a digest of their pixels), so measuring many outputs against one style
    encodes the style once.
    """

    def __init__(
        self,
        encoder: Lite0Encoder | None = None,
        *,
        side: int = EVAL_SIDE,
        style_taps: Sequence[str] = STYLE_TAPS,
        content_tap: str = CONTENT_TAP,
        name: str = "lite0",
    ) -> None:
        if side < 32:
            raise ValueError(f"the evaluation side must be at least 32 pixels, got {side}")
        self.side = side
        self.name = name
        self.style_taps = tuple(style_taps)
        self.content_tap = content_tap
        self._encoder = encoder if encoder is not None else load_lite0()
        unknown = {*self.style_taps, content_tap}.difference(self._encoder.taps)
        if unknown:
            raise ValueError(f"the encoder has no taps {sorted(unknown)}")
        self._device = next(self._encoder.parameters()).device
        self._style_cache: OrderedDict[str, dict[str, Tensor]] = OrderedDict()
        self._lock = threading.Lock()

    def style_distance(self, image: RGBImage, style: RGBImage) -> float:
        """Mean relative Gram error of `image` against `style` over the style taps."""
        ours = self._grams(image)
        theirs = self._style_grams(style)
        errors = [
            float(torch.linalg.vector_norm(ours[tap] - theirs[tap]))
            / max(float(torch.linalg.vector_norm(theirs[tap])), 1e-12)
            for tap in self.style_taps
        ]
        return float(np.mean(errors))

    def content_distance(self, image: RGBImage, content: RGBImage) -> float:
        """Relative error of `image`'s content-tap activations against `content`'s."""
        reference = resize_long_side(self._tensor(content), self.side)
        candidate = resize_to(self._tensor(image), reference, antialias=True)
        with torch.no_grad():
            tap = self.content_tap
            ours = self._encoder.forward_features(candidate, (tap,))[tap]
            theirs = self._encoder.forward_features(reference, (tap,))[tap]
        return float(torch.linalg.vector_norm(ours - theirs)) / max(
            float(torch.linalg.vector_norm(theirs)), 1e-12
        )

    def measure(self, output: RGBImage, content: RGBImage, style: RGBImage) -> Distances:
        """Both distances of one stylized `output` of (`content`, `style`)."""
        return Distances(
            style=self.style_distance(output, style),
            content=self.content_distance(output, content),
        )

    def _style_grams(self, style: RGBImage) -> dict[str, Tensor]:
        key = pixels_key(style)
        with self._lock:
            cached = self._style_cache.get(key)
            if cached is not None:
                self._style_cache.move_to_end(key)
                return cached
        grams = self._grams(style)
        with self._lock:
            self._style_cache[key] = grams
            while len(self._style_cache) > _STYLE_CACHE_SIZE:
                self._style_cache.popitem(last=False)
        return grams

    def _grams(self, image: RGBImage) -> dict[str, Tensor]:
        x = resize_long_side(self._tensor(image), self.side)
        with torch.no_grad():
            features = self._encoder.forward_features(x, self.style_taps)
        return {tap: gram(features[tap]) for tap in self.style_taps}

    def _tensor(self, image: RGBImage) -> Tensor:
        return to_tensor(to_float32(image), self._device)


def lite1_meter(*, side: int = EVAL_SIDE, device: str = "cpu") -> QualityMeter:
    """The independent judge: the same distances on EfficientNet-Lite1 (module docstring)."""
    return QualityMeter(
        load_lite1(device=device),
        side=side,
        style_taps=LITE1_STYLE_TAPS,
        content_tap=LITE1_CONTENT_TAP,
        name="lite1",
    )


def histogram_baseline(content: RGBImage, style: RGBImage) -> RGBImage:
    """The content recoloured to the style's per-channel RGB histograms; no texture."""
    matched = match_histogram(source=to_float32(content), reference=to_float32(style))
    return to_uint8(matched)


class HistogramBaseline:
    """Histogram matching alone, behind the `StyleFamily` interface, for the evaluation.

    With several styles, the content is matched to each and the results are averaged
    with the normalised weights; per channel that averages the styles' quantile
    functions, i.e. matches the content to the weighted 1-D Wasserstein barycentre of
    their histograms. `alpha` blends the matched values with the content's (a partial
    move along the same monotone map), `luminance_only` keeps the content's chroma and
    `histogram_match` first recolours the styles to the content's histogram (so the
    baseline then returns the content). `tv_weight` and `seed` do not apply: there is
    nothing to smooth and nothing random.
    """

    name = BASELINE_NAME

    def stylize(
        self,
        content: RGBImage,
        styles: Sequence[RGBImage],
        weights: Sequence[float],
        controls: StylizeControls,
        *,
        style_keys: Sequence[str] | None = None,
        cancellation: Cancellation | None = None,
    ) -> RGBImage:
        """Returns `content` with the weighted mix of the styles' colour histograms."""
        mix = validate_request(content, styles, weights)
        source = to_float32(content)
        matched = np.zeros_like(source)
        for style, weight in zip(styles, mix, strict=True):
            reference = to_float32(style)
            if controls.histogram_match:
                reference = match_histogram(source=reference, reference=source)
            matched += np.float32(weight) * match_histogram(source=source, reference=reference)
        blended = (1.0 - controls.alpha) * source + controls.alpha * matched
        if controls.luminance_only:
            blended = luminance_transfer(blended, source)
        return to_uint8(blended)


def summarise(
    rows: Mapping[str, Sequence[Distances]], seconds: Sequence[float], *, side: int
) -> dict[str, Any]:
    """Medians of each row's distances and the time per pair, as manifests record quality."""
    summary: dict[str, Any] = {
        "pairs": max((len(values) for values in rows.values()), default=0),
        "side": side,
        "metric": "gouache.nst.quality: median style (Gram b1-b11) and content (b8) distance",
        "median_seconds_per_pair": round(statistics.median(seconds), 4),
    }
    for name, values in rows.items():
        summary[name] = {
            "style_distance": round(statistics.median(v.style for v in values), 4),
            "content_distance": round(statistics.median(v.content for v in values), 4),
        }
    return summary
