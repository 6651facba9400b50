"""Gatys transfer: optimise the pixels until their Lite0 Gram statistics match the style.

How the defaults in `GatysConfig` were chosen (measured here, 2 CPU cores, torch 2.15,
2 intra-op threads). Contents: skimage's astronaut and chelsea at 256 px long side;
styles: a synthetic brush-stroke image, skimage's immunohistochemistry and Hubble
deep-field images; numbers are means over the six pairs. Style distance: relative Gram
error |G(x) - G(s)| / |G(s)| averaged over taps stem, b1, b3, b5, b8, b11, b15 (the
contents start at 1.11). Content distance: relative feature error at b5, b8, b11.
Other jobs shared the cores during the sweeps, so only the final timings (quiet
machine, best of 2-3 runs) are times to quote.

- Optimiser, 100 loss evaluations each (strong-Wolfe L-BFGS used ~1 per iteration):
  L-BFGS style 0.299 / 0.293 / 0.291 at content 0.92 / 0.98 / 0.99 (style weight 10,
  100, 1000: it stalls); Adam lr 0.02 style 0.248 at content 0.963 (style weight 10)
  and 0.243 at 1.02 (100). Adam lr 0.05 was grainy (0.236 at 1.08), lr 0.01 slow
  (0.280). Chosen: Adam, lr 0.02, style weight 10, content weight 1.
- Style taps (Adam, 100 steps): b1 b3 b5 b8 b11 -> 0.248; stem b2 b4 b7 b11 -> 0.327;
  adding b15 -> 0.340; b1 b3 b5 b8 -> 0.333; stem b1 b3 b5 -> 0.543 (barely stylized).
- Content tap b5 / b8 / b11: content 0.969 / 0.963 / 0.968, style unchanged -> b8.
- Start from the content plus seeded uniform noise of +-0.1: style 0.229 vs 0.248
  for the plain content, content 0.971 vs 0.963 -> kept; it is what `seed` drives.
- TV weight 1 / 10 / 30 / 100: style 0.229 / 0.229 / 0.235 / 0.255; share of spectral
  energy within two bins of Nyquist (the stride-2 checkerboard) 0.72% / 0.42% / 0.20%
  / 0.08% -> 30.
- Steps (TV 1): 30 / 50 / 100 / 200 -> style 0.339 / 0.280 / 0.229 / 0.194.
- Defaults then (200 steps, TV 30): style 0.213, content 0.964, 9.0-9.3 s per 256 px
  image. "gatys.lite0-fast" (40 steps): style 0.305, content 0.973, 1.8-2.0 s.
- Coarse-to-fine at 512 px (astronaut, two styles): direct 200 steps style 0.190,
  content 0.94, 34.7 s; 200 at half size + 50 at full 0.199 / 1.03, 18.8 s; + 100 at
  full 0.191 / 1.00, 28.7 s. The coarse pass paints larger strokes but softens faces,
  so it starts above 512 px (production tiles stay direct), refining for 100 steps.

Re-tuned against the `gouache eval` grid (issue 3: style distance below the histogram
baseline's, content distance at most 1.5x its), 1 torch thread, contents kodim13 and
kodim24 x the eight feedforward styles at 256 px, medians over the 16 pairs, metrics of
`gouache.nst.quality`; baseline style 0.707, content 0.472. Content weight 1 painted
the photo away: 200 steps style 0.117, content 0.876 (1.85x); 40 steps style 0.188,
content 0.875 (1.85x); init_noise 0 changes nothing there (0.206 / 0.876). Content
weight at 40 steps: 5 -> 0.216 / 0.704 (1.49x), 10 -> 0.249 / 0.593 (1.26x), 20 ->
0.292 / 0.478 (1.01x); at 200 steps, 10 -> 0.184 / 0.565 (1.20x). Chosen: content
weight 10, clearly inside the limit and, looking at the outputs, still strongly painted
(strokes and palette of the style, the photo's layout kept).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from types import MappingProxyType

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from gouache.imaging.color import luminance_transfer, to_float32, to_uint8
from gouache.imaging.tiling import MIN_TILE_SIZE, blend_tiles, plan_tiles
from gouache.lru import LruCache
from gouache.nst.base import (
    Cancellation,
    RGBImage,
    StylizeControls,
    check_cancellation,
    validate_request,
)
from gouache.nst.encoders.base import FeatureEncoder
from gouache.nst.encoders.lite0 import LITE0_TAPS
from gouache.nst.encoders.vgg19 import VGG19_TAPS
from gouache.nst.losses import content_loss, gram, style_loss, tv_loss
from gouache.nst.pixels import (
    KeyedStyle,
    long_side,
    prepare_styles,
    resize_long_side,
    resize_to,
    to_numpy,
    to_tensor,
)
from gouache.nst.specs import FamilyBuilder, ModelSpec

FloatImage = npt.NDArray[np.float32]
GramTargets = Mapping[str, Tensor]

# The deterministic-algorithms switch is process-wide, so calls that flip it take turns.
_DETERMINISM_LOCK = threading.Lock()


def _default_style_taps() -> Mapping[str, float]:
    return {"b1": 1.0, "b3": 1.0, "b5": 1.0, "b8": 1.0, "b11": 1.0}


@dataclass(frozen=True)
class GatysConfig:
    """Everything that shapes a Gatys result; the defaults are the measured ones above.

    style_taps: encoder taps (Lite0's by default, VGG19's for a vgg19 spec) whose Gram matrices define the style, with their weights.
    content_tap: the tap whose activations must stay close to the content's.
    style_weight, content_weight: balance of the two (both losses are relative errors).
    tv_weight: total-variation weight when a request does not set one.
    steps: Adam steps at the first (or only) resolution.
    refine_steps: Adam steps at full resolution after a coarse pass.
    learning_rate: Adam step size, in pixel units of a [0, 1] image.
    max_side: largest long side optimised; larger contents are stylized at this size and
        resized back, bounding time and memory (the tiler keeps tiles below it anyway).
    coarse_to_fine_threshold: above this long side, optimise at half size first, then
        upsample and refine; large images get coarse structure cheaply.
    init_noise: amplitude of the seeded uniform noise added to the starting content.
    style_cache_size: how many (style, size) Gram sets the LRU cache keeps.
    coarse_side: when positive, the coarse-to-fine schedule of `gatys.lite0-v2` replaces
        the one above: a content longer than this is optimised for `steps` at this long
        side, upsampled, and refined for `refine_steps` at full size, tile by tile
        (`refine_tile`, `refine_overlap`, feathered blending); 0 keeps v1's schedule.
    refine_tile: long side of the refinement tiles (bounds memory at 2048 px).
    refine_overlap: pixels neighbouring refinement tiles share, blended along a raised
        cosine (`gouache.imaging.tiling.blend_tiles`).
    """

    style_taps: Mapping[str, float] = field(default_factory=_default_style_taps)
    content_tap: str = "b8"
    style_weight: float = 10.0
    content_weight: float = 10.0
    tv_weight: float = 30.0
    steps: int = 200
    refine_steps: int = 100
    learning_rate: float = 0.02
    max_side: int = 1024
    coarse_to_fine_threshold: int = 512
    init_noise: float = 0.1
    style_cache_size: int = 32
    coarse_side: int = 0
    refine_tile: int = 512
    refine_overlap: int = 64

    def __post_init__(self) -> None:
        object.__setattr__(self, "style_taps", MappingProxyType(dict(self.style_taps)))
        check_taps(self, KNOWN_TAPS)
        if not self.style_taps or any(w <= 0.0 for w in self.style_taps.values()):
            raise ValueError("style_taps needs at least one tap, each with a positive weight")
        if self.steps < 1 or self.refine_steps < 0:
            raise ValueError("steps must be at least 1 and refine_steps at least 0")
        if self.learning_rate <= 0.0:
            raise ValueError("learning_rate must be positive")
        if min(self.style_weight, self.content_weight, self.tv_weight, self.init_noise) < 0.0:
            raise ValueError("style, content and TV weights and init_noise must not be negative")
        if self.max_side < 16 or self.coarse_to_fine_threshold < 16:
            raise ValueError("max_side and coarse_to_fine_threshold must be at least 16 pixels")
        if self.style_cache_size < 1:
            raise ValueError("style_cache_size must be at least 1")
        if self.coarse_side < 0 or (0 < self.coarse_side < 16):
            raise ValueError("coarse_side must be 0 (off) or at least 16 pixels")
        if self.refine_tile < MIN_TILE_SIZE or not 0 <= self.refine_overlap < self.refine_tile / 2:
            raise ValueError(
                f"refine_tile must be at least {MIN_TILE_SIZE} pixels and refine_overlap "
                "at least 0 and under half of it"
            )

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> GatysConfig:
        """Builds a config from a registry entry's `config`, refusing unknown keys."""
        known = {f.name for f in fields(cls)}
        unknown = set(values).difference(known)
        if unknown:
            raise ValueError(f"unknown GatysConfig keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class _Plan:
    """What one request asks for, resolved: styles, normalised mix, strength and weights."""

    styles: tuple[KeyedStyle, ...]
    mix: tuple[float, ...]
    alpha: float
    tv_weight: float
    seed: int
    # Checked before every Adam step, so a canceled call stops within one step.
    cancellation: Cancellation | None = None


def check_taps(config: GatysConfig, known: Sequence[str]) -> None:
    """Raises ValueError unless every tap the config names is one of `known`."""
    unknown = set(config.style_taps).union([config.content_tap]).difference(known)
    if unknown:
        raise ValueError(f"unknown taps {sorted(unknown)}; known: {', '.join(known)}")


# Taps of every encoder a gatys spec may name; a spec's taps must be its encoder's.
ENCODER_TAPS: Mapping[str, tuple[str, ...]] = {"lite0": LITE0_TAPS, "vgg19": VGG19_TAPS}
KNOWN_TAPS: tuple[str, ...] = (*LITE0_TAPS, *VGG19_TAPS)


def _check_spec(spec: ModelSpec) -> GatysConfig:
    """Gatys needs only a valid config for its encoder: it trains nothing, ships no weights."""
    if spec.weights:
        raise ValueError(f"{spec.name}: gatys loads no weights, got {sorted(spec.weights)}")
    config = GatysConfig.from_mapping(spec.config)
    if spec.encoder in ENCODER_TAPS:
        check_taps(config, ENCODER_TAPS[spec.encoder])
    return config


def build(spec: ModelSpec, encoder: FeatureEncoder, device: torch.device) -> GatysFamily:
    """The registry's builder for gatys specs: the pinned config over the shared encoder."""
    return GatysFamily(_check_spec(spec), encoder, device=device)


class GatysFamily:
    """Stylizes by optimising pixels (Gatys et al., 2016) against a frozen Lite0 encoder.

    Style strength `alpha` interpolates the Gram *targets* between the content's own
    Gram matrices and the styles' mix, and scales the TV weight with it. Blending pixels
    instead would ghost two images over each other; interpolating the statistics gives a
    genuinely weaker style. At alpha=0 the content is already the optimum, so it is
    returned exactly, without optimising.

    Calls may come from several threads; their optimisations take turns (see
    `_deterministic`), which costs nothing on CPU, where one optimisation already keeps
    every core busy.
    """

    name = "gatys"

    def __init__(
        self, config: GatysConfig, encoder: FeatureEncoder, *, device: str | torch.device = "cpu"
    ) -> None:
        check_taps(config, encoder.taps)
        self.config = config
        self._encoder = encoder
        self._device = torch.device(device)
        self._cache: LruCache[tuple[object, ...], GramTargets] = LruCache(
            self.config.style_cache_size
        )

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
        """Returns `content` painted in the weighted mix of `styles`, same size, uint8 RGB.

        `style_keys` (one stable id per style, e.g. the sha256 of its bytes) lets tiles of
        one image reuse the styles' Gram matrices instead of recomputing them.
        `cancellation` is checked before every optimisation step (and so between passes
        and refinement tiles); once it fires the call raises `Canceled` within one step.
        """
        mix = validate_request(content, styles, weights, style_keys)
        if controls.alpha == 0.0:
            return content.copy()
        content_f = to_float32(content)
        plan = _Plan(
            styles=prepare_styles(
                styles, style_keys, content_f if controls.histogram_match else None
            ),
            mix=mix,
            alpha=controls.alpha,
            tv_weight=self.config.tv_weight if controls.tv_weight is None else controls.tv_weight,
            seed=controls.seed,
            cancellation=cancellation,
        )
        with _deterministic():
            result = self._optimise(to_tensor(content_f, self._device), plan)
        stylized = to_numpy(result)
        if controls.luminance_only:
            stylized = luminance_transfer(stylized, content_f)
        return to_uint8(stylized)

    def cached_styles(self) -> int:
        """How many (style, size) Gram sets are cached now; at most `style_cache_size`."""
        return len(self._cache)

    def _optimise(self, content: Tensor, plan: _Plan) -> Tensor:
        """Runs the resolution pyramid and returns pixels at the content's size."""
        working = resize_long_side(content, min(long_side(content), self.config.max_side))
        if self.config.coarse_side:
            return resize_to(self._coarse_to_fine(working, plan), content)
        if long_side(working) > self.config.coarse_to_fine_threshold:
            coarse = resize_long_side(working, long_side(working) // 2)
            start = self._optimise_level(
                coarse, _seeded_start(coarse, plan.seed, self.config), plan, self.config.steps
            )
            start = resize_to(start, working)
            result = self._optimise_level(working, start, plan, self.config.refine_steps)
        else:
            start = _seeded_start(working, plan.seed, self.config)
            result = self._optimise_level(working, start, plan, self.config.steps)
        return resize_to(result, content)

    def _coarse_to_fine(self, content: Tensor, plan: _Plan) -> Tensor:
        """v2's schedule: optimise small, upsample, refine briefly at full size in tiles.

        Every refinement tile starts from the same upsampled coarse painting, so strokes
        and colours already agree across tile boundaries; the few refinement steps add
        full-resolution texture, and the overlaps are blended with raised-cosine weights.
        """
        config = self.config
        if long_side(content) <= config.coarse_side:
            return self._optimise_level(
                content, _seeded_start(content, plan.seed, config), plan, config.steps
            )
        coarse = resize_long_side(content, config.coarse_side)
        painted = self._optimise_level(
            coarse, _seeded_start(coarse, plan.seed, config), plan, config.steps
        )
        start = resize_to(painted, content)
        if config.refine_steps == 0:
            return start
        height, width = int(content.shape[-2]), int(content.shape[-1])
        tiles = plan_tiles(width, height, config.refine_tile, config.refine_overlap)
        outputs = []
        for tile in tiles:
            rows = slice(tile.y, tile.y + tile.height)
            cols = slice(tile.x, tile.x + tile.width)
            refined = self._optimise_level(
                content[..., rows, cols].contiguous(),
                start[..., rows, cols].contiguous(),
                plan,
                config.refine_steps,
            )
            outputs.append(to_numpy(refined))
        blended = blend_tiles(tiles, outputs, width, height, config.refine_overlap)
        return to_tensor(np.ascontiguousarray(blended), self._device)

    def _optimise_level(self, content: Tensor, start: Tensor, plan: _Plan, steps: int) -> Tensor:
        """Optimises at one resolution; targets come from `content` and styles at its size."""
        taps = list(self.config.style_taps)
        with torch.no_grad():
            content_features = self._encoder.forward_features(
                content, [*taps, self.config.content_tap]
            )
        side = long_side(content)
        style_grams = [self._style_grams(style, side) for style in plan.styles]
        targets = {
            tap: (1.0 - plan.alpha) * gram(content_features[tap])
            + plan.alpha * _weighted_sum([g[tap] for g in style_grams], plan.mix)
            for tap in taps
        }
        objective = _Objective.relative(
            self._encoder,
            self.config,
            style_targets=targets,
            content_target=content_features[self.config.content_tap],
            tv_weight=plan.tv_weight * plan.alpha,
        )
        return _adam(objective, start, steps, self.config.learning_rate, plan.cancellation)

    def _style_grams(self, style: KeyedStyle, side: int) -> GramTargets:
        """Gram matrices of one style resized to long side `side`, through the LRU cache."""
        key = (*style.key, side)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        image = resize_long_side(to_tensor(style.pixels, self._device), side)
        with torch.no_grad():
            features = self._encoder.forward_features(image, list(self.config.style_taps))
        grams = MappingProxyType({tap: gram(value) for tap, value in features.items()})
        self._cache.put(key, grams)
        return grams


@dataclass(frozen=True)
class _Objective:
    """The Gatys loss at one resolution, each term made relative to its target's size.

    Dividing each tap's squared Gram error by the mean square of its target (and the
    content error by that of the content activations) makes the terms unitless, so the
    tap weights and the style/content balance mean the same at every tap and image size.
    """

    encoder: FeatureEncoder
    style_targets: GramTargets
    style_tap_weights: Mapping[str, float]
    content_tap: str
    content_target: Tensor
    content_weight: float
    tv_weight: float

    @classmethod
    def relative(
        cls,
        encoder: FeatureEncoder,
        config: GatysConfig,
        style_targets: GramTargets,
        content_target: Tensor,
        tv_weight: float,
    ) -> _Objective:
        """Folds the configured weights and each target's scale into plain numbers, once."""
        return cls(
            encoder=encoder,
            style_targets=style_targets,
            style_tap_weights={
                tap: config.style_weight * weight / _mean_square(style_targets[tap])
                for tap, weight in config.style_taps.items()
            },
            content_tap=config.content_tap,
            content_target=content_target,
            content_weight=config.content_weight / _mean_square(content_target),
            tv_weight=tv_weight,
        )

    def __call__(self, image: Tensor) -> Tensor:
        features = self.encoder.forward_features(image, [*self.style_tap_weights, self.content_tap])
        return (
            style_loss(features, self.style_targets, self.style_tap_weights)
            + self.content_weight * content_loss(features[self.content_tap], self.content_target)
            + self.tv_weight * tv_loss(image)
        )


def _adam(
    objective: _Objective,
    start: Tensor,
    steps: int,
    learning_rate: float,
    cancellation: Cancellation | None = None,
) -> Tensor:
    """Minimises `objective` over the pixels with Adam, keeping them inside [0, 1].

    `cancellation` is checked before each step: a step costs a forward and a backward
    pass (tens to hundreds of milliseconds), so a canceled call stops well within a second.
    """
    pixels = start.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)
    optimiser = torch.optim.Adam([pixels], lr=learning_rate)
    for _ in range(steps):
        check_cancellation(cancellation)
        optimiser.zero_grad(set_to_none=True)
        torch.autograd.backward(objective(pixels))
        optimiser.step()
        with torch.no_grad():
            pixels.clamp_(0.0, 1.0)
    return pixels.detach()


def _seeded_start(content: Tensor, seed: int, config: GatysConfig) -> Tensor:
    """The content plus uniform noise from a private generator seeded with `seed`.

    The generator is private so no global random state is read or changed, and lives on
    the CPU so a seed gives the same noise on every device.
    """
    if config.init_noise == 0.0:
        return content
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand(content.shape, generator=generator).to(content.device) * 2.0 - 1.0
    return (content + config.init_noise * noise).clamp(0.0, 1.0)


@contextmanager
def _deterministic() -> Iterator[None]:
    """Insists on deterministic kernels for one call, then restores the previous setting.

    On CPU our kernels are deterministic anyway; on CUDA this also pins cuDNN and needs
    CUBLAS_WORKSPACE_CONFIG=:4096:8 in the environment (torch raises a clear error if
    it is missing). The thread count is left alone: it is part of "the same runtime".
    """
    with _DETERMINISM_LOCK:
        previous = torch.are_deterministic_algorithms_enabled()
        torch.use_deterministic_algorithms(True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(previous)


def _weighted_sum(values: Sequence[Tensor], weights: Sequence[float]) -> Tensor:
    total = values[0] * weights[0]
    for value, weight in zip(values[1:], weights[1:], strict=True):
        total = total + value * weight
    return total


def _mean_square(value: Tensor) -> float:
    return max(float(torch.mean(value**2)), 1e-12)


BUILDER = FamilyBuilder(family="gatys", check=_check_spec, build=build)
