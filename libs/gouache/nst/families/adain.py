"""AdaIN transfer: Lite0 features renormalised to the styles' statistics, then a trained decoder.

Inference (Huang & Belongie, 2017): the content's features f at the tap are shifted
and scaled per channel to the style's mean and standard deviation,
AdaIN(f) = (f - mean(f)) / std(f) * std_s + mean_s; several styles mix by their
normalised weights applied to their means and to their standard deviations; `alpha`
blends alpha * AdaIN(f) + (1 - alpha) * f before decoding, so alpha 0 decodes the
content's own features (a reconstruction, close to the content but not bit-equal).

How the tap and decoder were chosen (measured here: shared 2-core AMD EPYC, torch 2.15,
1 training thread; data /work/shared/data, 75 contents and 24 styles trained on, 8 and 3
held out; quality = `gouache.nst.quality` medians over 12 held-out pairs at 256 px,
where histogram matching alone scores style 0.679-0.682, content 0.514-0.516, and the
untouched content style 0.842). Pilots, `gouache train adain` with max_steps 500-600:

- b5 (stride 8, 40 channels), decoder 96/64/32/16, 160 px crops: 404 steps in 9 min
  (three trainings sharing the two cores): style 0.704, content 0.702; blurry.
- b8 (stride 16, 80 channels), decoder 128/96/64/32/16, same settings and time: 393
  steps: style 0.724, content 0.848; smeared. b11 has b8's stride and was not run.
- b5 with style weight 4, colour weight 10, lr 2e-3, 128 px crops: 458 steps, style
  0.704, content 0.834; adding b8 to the style taps: 441 steps, 0.705 / 0.818; both
  with repeated blob artefacts.
- b3 (stride 4, 24 channels), decoder 64/32/16, the previous loss: 500 steps in 3 min
  (a quieter machine): style 0.684, content 0.678, and visibly the sharpest.

A deep, narrow tap is a bottleneck a small decoder cannot invert in minutes of CPU
training (b5 keeps 40 numbers per 8x8x3 patch, b8 80 per 16x16x3; b3 24 per 4x4x3),
so b3 trains to good quality fastest; its style statistics alone are shallow, so the
loss also matches statistics at b5. The shipped adain.lite0-v1 (b3, decoder 96/48/16,
153k parameters, 309 KB in fp16) trained 3393 steps in 28 min: style 0.678, content
0.625 (its manifest.json has the run). A 512x512 image takes 0.32 s on one thread and
0.19 s on two, style statistics cached (median of 5).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn

from gouache.imaging.color import luminance_transfer, to_float32, to_uint8
from gouache.lru import LruCache
from gouache.nst.base import (
    Cancellation,
    RGBImage,
    StylizeControls,
    check_cancellation,
    validate_request,
)
from gouache.nst.batching import StylizeItem
from gouache.nst.encoders.base import FeatureEncoder
from gouache.nst.encoders.lite0 import Lite0Encoder
from gouache.nst.pixels import (
    KeyedStyle,
    long_side,
    pad_to_stride,
    prepare_styles,
    resize_long_side,
    resize_to,
    to_tensor,
)
from gouache.nst.specs import FamilyBuilder, ModelSpec, trained_on_lite0

FloatImage = npt.NDArray[np.float32]
Statistics = tuple[Tensor, Tensor]
"""Per-channel (mean, std) of NCHW features, each shaped (N, C, 1, 1)."""

TAP_GEOMETRY: Mapping[str, tuple[int, int]] = {
    "stem": (32, 2),
    "b1": (16, 2),
    **{f"b{i}": (24, 4) for i in (2, 3)},
    **{f"b{i}": (40, 8) for i in (4, 5)},
    **{f"b{i}": (80, 16) for i in (6, 7, 8)},
    **{f"b{i}": (112, 16) for i in (9, 10, 11)},
    **{f"b{i}": (192, 32) for i in (12, 13, 14, 15)},
    "b16": (320, 32),
    "head": (1280, 32),
}
"""(channels, stride) of every Lite0 tap: what a decoder from that tap starts with."""


@dataclass(frozen=True)
class AdainConfig:
    """Everything that shapes an AdaIN result except the decoder's trained weights.

    tap: the Lite0 tap whose features are renormalised and decoded.
    decoder_widths: channels of the decoder's levels, deepest (the tap's stride) first,
        one level per factor of two down to full resolution.
    decoder_convs: 3x3 convolutions (each followed by ReLU) at each level.
    eps: added to the variance before the square root, so flat regions stay finite.
    style_side: styles are resized to this long side before their statistics are taken,
        so a style means the same whatever size it was uploaded at, and every tile of
        an image sees the same statistics.
    max_side: larger contents are stylized at this long side and resized back,
        bounding time and memory (the tiler keeps tiles below it anyway).
    tv_weight: smoothing applied when a request does not set one (see `smooth`).
    style_cache_size: how many styles' statistics the LRU cache keeps.
    """

    tap: str = "b3"
    decoder_widths: tuple[int, ...] = (96, 48, 16)
    decoder_convs: tuple[int, ...] = (2, 1, 1)
    eps: float = 1e-5
    style_side: int = 512
    max_side: int = 2048
    tv_weight: float = 0.0
    style_cache_size: int = 32

    def __post_init__(self) -> None:
        object.__setattr__(self, "decoder_widths", tuple(int(w) for w in self.decoder_widths))
        object.__setattr__(self, "decoder_convs", tuple(int(n) for n in self.decoder_convs))
        if self.tap not in TAP_GEOMETRY:
            raise ValueError(f"unknown tap {self.tap!r}; known: {', '.join(TAP_GEOMETRY)}")
        levels = decoder_levels(self.tap)
        if len(self.decoder_widths) != levels or len(self.decoder_convs) != levels:
            raise ValueError(
                f"tap {self.tap} has stride {TAP_GEOMETRY[self.tap][1]}, so the decoder needs "
                f"{levels} levels; got {len(self.decoder_widths)} widths and "
                f"{len(self.decoder_convs)} conv counts"
            )
        if any(w < 1 for w in self.decoder_widths) or any(n < 1 for n in self.decoder_convs):
            raise ValueError("decoder widths and conv counts must all be at least 1")
        if not self.eps > 0.0:
            raise ValueError(f"eps must be positive, got {self.eps}")
        if self.style_side < 32 or self.max_side < 64:
            raise ValueError("style_side must be at least 32 and max_side at least 64")
        if self.tv_weight < 0.0:
            raise ValueError(f"tv_weight must be zero or positive, got {self.tv_weight}")
        if self.style_cache_size < 1:
            raise ValueError(f"style_cache_size must be at least 1, got {self.style_cache_size}")

    @property
    def stride(self) -> int:
        """How many pixels one feature of the tap spans along each axis."""
        return TAP_GEOMETRY[self.tap][1]

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> AdainConfig:
        """Builds a config from a spec's mapping, refusing keys it does not know."""
        known = {f.name for f in fields(cls)}
        unknown = set(values).difference(known)
        if unknown:
            raise ValueError(f"unknown AdainConfig keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**values)  # type: ignore[arg-type]


def decoder_levels(tap: str) -> int:
    """Resolution levels a decoder from `tap` spans: the tap's own, then each factor of two."""
    return int(math.log2(TAP_GEOMETRY[tap][1])) + 1


class AdainDecoder(nn.Module):
    """Tap features back to RGB: reflection-padded 3x3 convolutions, ReLU, nearest x2.

    Each level runs its convolutions, then (except the last) doubles the resolution by
    nearest-neighbour upsampling, which, unlike transposed convolutions, leaves no
    checkerboard. A final convolution maps to RGB in [0, 1] (clamped by the caller).
    """

    def __init__(self, in_channels: int, widths: Sequence[int], convs: Sequence[int]) -> None:
        super().__init__()
        if len(widths) != len(convs) or not widths:
            raise ValueError("widths and convs need one entry per level, at least one level")
        layers: list[nn.Module] = []
        previous = in_channels
        for level, (width, count) in enumerate(zip(widths, convs, strict=True)):
            for _ in range(count):
                layers += [nn.ReflectionPad2d(1), nn.Conv2d(previous, width, 3), nn.ReLU()]
                previous = width
            if level < len(widths) - 1:
                layers.append(nn.Upsample(scale_factor=2.0, mode="nearest"))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(previous, 3, 3)]
        self.layers = nn.Sequential(*layers)

    @classmethod
    def from_config(cls, config: AdainConfig) -> AdainDecoder:
        """The decoder shape a config describes, with freshly initialised weights."""
        return cls(TAP_GEOMETRY[config.tap][0], config.decoder_widths, config.decoder_convs)

    def forward(self, features: Tensor) -> Tensor:
        decoded: Tensor = self.layers(features)
        return decoded


def feature_statistics(features: Tensor, eps: float) -> Statistics:
    """Per-channel mean and standard deviation over height and width, (N, C, 1, 1) each.

    The variance is the population variance (no Bessel correction) plus `eps`, so the
    standard deviation is never zero and AdaIN never divides by zero.
    """
    if features.dim() != 4:
        raise ValueError(f"expected NCHW features, got shape {tuple(features.shape)}")
    mean = features.mean(dim=(2, 3), keepdim=True)
    variance = features.var(dim=(2, 3), keepdim=True, unbiased=False)
    return mean, torch.sqrt(variance + eps)


def adain(content: Tensor, style_mean: Tensor, style_std: Tensor, eps: float) -> Tensor:
    """Content features normalised per channel, then given the style's mean and std."""
    mean, std = feature_statistics(content, eps)
    return (content - mean) / std * style_std + style_mean


def mix_statistics(statistics: Sequence[Statistics], weights: Sequence[float]) -> Statistics:
    """The weighted mean of several styles' means and of their stds (weights sum to one)."""
    if not statistics or len(statistics) != len(weights):
        raise ValueError(f"got {len(weights)} weights for {len(statistics)} styles")
    mean = statistics[0][0] * weights[0]
    std = statistics[0][1] * weights[0]
    for (style_mean, style_std), weight in zip(statistics[1:], weights[1:], strict=True):
        mean = mean + style_mean * weight
        std = std + style_std * weight
    return mean, std


class AdainTransfer(nn.Module):
    """The pure network: encoder to the tap, AdaIN to given statistics, blend, decode.

    Tensors in, tensors out, no Python control flow on values, so it traces and exports
    (ONNX) as it runs here. The image's height and width must be multiples of the tap's
    stride (`AdainFamily` pads); the output has the input's size, unclamped.
    """

    def __init__(self, encoder: Lite0Encoder, decoder: AdainDecoder, *, tap: str, eps: float):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.tap = tap
        self.eps = eps

    def encode(self, image: Tensor) -> Tensor:
        """The image's features at the tap."""
        return self.encoder.forward_features(image, (self.tap,))[self.tap]

    def forward(
        self, image: Tensor, style_mean: Tensor, style_std: Tensor, alpha: Tensor
    ) -> Tensor:
        features = self.encode(image)
        target = adain(features, style_mean, style_std, self.eps)
        decoded: Tensor = self.decoder(alpha * target + (1.0 - alpha) * features)
        return decoded


def smooth(image: Tensor, weight: float) -> Tensor:
    """The image closest to `image` whose neighbour differences are penalised by `weight`.

    Solves min_x sum((x - image)^2) + weight * sum of squared differences between
    vertical and horizontal neighbours (the quadratic total variation of
    `gouache.nst.losses.tv_loss`, summed): the screened Poisson equation
    (I - weight * Laplacian) x = image with mirrored borders, solved exactly in the
    Fourier domain of the mirror-extended image. Weight 0 returns the image; weight 1
    divides a one-pixel checkerboard by 9 and halves a pattern with a 6-pixel period;
    larger weights blur more. A decoded image has no optimisation left to regularise,
    so this is how a request's `tv_weight` acts on AdaIN.
    """
    if weight == 0.0:
        return image
    height, width = int(image.shape[-2]), int(image.shape[-1])
    extended = torch.cat([image, image.flip(-1)], dim=-1)
    extended = torch.cat([extended, extended.flip(-2)], dim=-2)
    spectrum = torch.fft.rfft2(extended.double())
    rows = torch.arange(2 * height, dtype=torch.float64, device=image.device)
    cols = torch.arange(width + 1, dtype=torch.float64, device=image.device)
    eigen_rows = 2.0 - 2.0 * torch.cos(math.pi * rows / height)
    eigen_cols = 2.0 - 2.0 * torch.cos(math.pi * cols / width)
    denominator = 1.0 + weight * (eigen_rows[:, None] + eigen_cols[None, :])
    solved: Tensor = torch.fft.irfft2(spectrum / denominator, s=(2 * height, 2 * width))
    return solved[..., :height, :width].to(image.dtype)


TransferRunner = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]
"""(image, style mean, style std, alpha) -> stylized image: `AdainTransfer` or its export."""


@dataclass(frozen=True)
class ItemInputs:
    """What the one-pass families derive alike from a `StylizeItem` before their networks:
    the checked mix, the content as float32, its styles prepared (keys, histogram match),
    the content as a tensor and its working copy at most `max_side` long."""

    mix: list[float]
    content: FloatImage
    styles: list[KeyedStyle]
    image: Tensor
    working: Tensor


def item_inputs(item: StylizeItem, device: torch.device, max_side: int) -> ItemInputs:
    """Checks an item (`validate_request`) and prepares what adain and wct both need."""
    mix = validate_request(item.content, item.styles, item.weights, item.style_keys)
    content = to_float32(item.content)
    reference = content if item.controls.histogram_match else None
    styles = prepare_styles(item.styles, item.style_keys, reference)
    with torch.inference_mode():
        image = to_tensor(content, device)
        working = resize_long_side(image, min(long_side(image), max_side))
    return ItemInputs(list(mix), content, list(styles), image, working)


def finish(
    decoded: Tensor,
    image: Tensor,
    content: FloatImage,
    tv_weight: float,
    luminance_only: bool,
) -> RGBImage:
    """A decoder's 1x3xhxw output as the result: resized to `image` (the content at full
    size), smoothed by `tv_weight`, optionally only its luminance over `content`, uint8 RGB.
    """
    result = resize_to(decoded, image).clamp(0.0, 1.0)
    result = smooth(result, tv_weight).clamp(0.0, 1.0)
    stylized = result[0].permute(1, 2, 0).contiguous().cpu().numpy()
    if luminance_only:
        stylized = luminance_transfer(stylized, content)
    return to_uint8(stylized)


@dataclass(frozen=True)
class _BatchItem:
    """One item of `AdainFamily.stylize_batch` up to the network, and what finishes it."""

    content: FloatImage
    image: Tensor
    working: Tensor
    mean: Tensor
    std: Tensor
    alpha: float
    tv_weight: float
    luminance_only: bool


class AdainFamily:
    """Stylizes any style in one forward pass: Lite0 encoder, AdaIN, trained decoder.

    Style statistics are computed once per (model version, style key, histogram
    reference) and kept in an LRU cache, so tiles of one image reuse them. The forward
    pass has no randomness: the output is a pure function of the inputs and controls,
    bit-identical across runs on the same runtime; `seed` has nothing to drive.
    Thread-safe: the network is read-only and the cache is locked.
    """

    name = "adain"

    def __init__(
        self,
        config: AdainConfig,
        encoder: Lite0Encoder,
        decoder: AdainDecoder,
        *,
        model_version: str = "adain",
        device: str | torch.device = "cpu",
        runner: TransferRunner | None = None,
    ) -> None:
        """`runner` replaces the torch forward pass (e.g. its ONNX export); same inputs, output."""
        self.config = config
        self.model_version = model_version
        self._device = torch.device(device)
        # The family keeps its own channels-last copy: on CPU, convolutions run about
        # 1.5x faster that way, and a shared encoder is left as it was.
        network = AdainTransfer(
            copy.deepcopy(encoder), decoder, tap=config.tap, eps=config.eps
        ).eval()
        network.requires_grad_(False)
        self.network = network.to(self._device).to(memory_format=torch.channels_last)
        self._runner: TransferRunner = self.network if runner is None else runner
        self._cache: LruCache[tuple[str, str, str | None], Statistics] = LruCache(
            config.style_cache_size
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
        """Returns `content` painted in the weighted mix of `styles`, same size, uint8 RGB."""
        item = StylizeItem(content, styles, weights, controls, style_keys, cancellation)
        return self.stylize_batch([item])[0]

    def _style_statistics(self, style: KeyedStyle) -> Statistics:
        """The style's statistics at the tap, from the LRU cache when seen before."""
        key = (self.model_version, *style.key)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        with torch.inference_mode():
            image = resize_long_side(to_tensor(style.pixels, self._device), self.config.style_side)
            features = self.network.encode(pad_to_stride(image, self.config.stride))
            statistics = feature_statistics(features, self.config.eps)
        self._cache.put(key, statistics)
        return statistics

    def cached_styles(self) -> int:
        """How many styles' statistics are cached now; at most `style_cache_size`."""
        return len(self._cache)

    def stylize_batch(self, items: Sequence[StylizeItem]) -> list[RGBImage]:
        """`stylize` for each item, the items' network passes batched (gouache.nst.batching).

        Style statistics and their mix are per item, so a batch mixes styles freely; the
        graph takes one alpha per pass, so items are grouped by working size and alpha,
        one forward pass per group. Each item's cancellation is checked before the pass.
        """
        prepared = [self._begin(item) for item in items]
        for item in items:
            check_cancellation(item.cancellation)
        groups: dict[tuple[int, int, float], list[int]] = {}
        for index, entry in enumerate(prepared):
            height, width = int(entry.working.shape[-2]), int(entry.working.shape[-1])
            groups.setdefault((height, width, entry.alpha), []).append(index)
        finished: dict[int, RGBImage] = {}
        with torch.inference_mode():
            for members in groups.values():
                decoded = self._decode(
                    torch.cat([prepared[i].working for i in members]),
                    torch.cat([prepared[i].mean for i in members]),
                    torch.cat([prepared[i].std for i in members]),
                    prepared[members[0]].alpha,
                )
                for row, index in enumerate(members):
                    finished[index] = self._finish(prepared[index], decoded[row : row + 1])
        return [finished[index] for index in range(len(prepared))]

    def _begin(self, item: StylizeItem) -> _BatchItem:
        """Checks an item and derives what its network pass needs, as `stylize` does."""
        inputs = item_inputs(item, self._device, self.config.max_side)
        statistics = [self._style_statistics(style) for style in inputs.styles]
        mean, std = mix_statistics(statistics, inputs.mix)
        controls = item.controls
        return _BatchItem(
            content=inputs.content,
            image=inputs.image,
            working=inputs.working,
            mean=mean,
            std=std,
            alpha=controls.alpha,
            tv_weight=self.config.tv_weight if controls.tv_weight is None else controls.tv_weight,
            luminance_only=controls.luminance_only,
        )

    def _finish(self, item: _BatchItem, decoded: Tensor) -> RGBImage:
        """An item's decoded working image back to its size, smoothed, as uint8 RGB."""
        return finish(decoded, item.image, item.content, item.tv_weight, item.luminance_only)

    def _decode(self, image: Tensor, mean: Tensor, std: Tensor, alpha: float) -> Tensor:
        """Pads to the stride with mirrored borders, runs the network, crops back."""
        height, width = int(image.shape[-2]), int(image.shape[-1])
        padded = pad_to_stride(image, self.config.stride)
        strength = torch.tensor(alpha, dtype=padded.dtype, device=padded.device)
        decoded: Tensor = self._runner(
            padded, mean.to(padded.device), std.to(padded.device), strength
        )
        return decoded[..., :height, :width].contiguous()


def _check_spec(spec: ModelSpec) -> AdainConfig:
    """An AdaIN spec needs Lite0, a valid config and exactly one weights file, its decoder."""
    trained_on_lite0(spec)
    if set(spec.weights) != {"decoder"}:
        raise ValueError(
            f"{spec.name}: adain needs exactly one weights file, 'decoder'; "
            f"got {sorted(spec.weights)}"
        )
    return AdainConfig.from_mapping(spec.config)


def load_decoder(spec: ModelSpec) -> AdainDecoder:
    """The spec's decoder with its weights, sha256-checked and loaded strictly, in float32."""
    config = _check_spec(spec)
    decoder = AdainDecoder.from_config(config)
    state = spec.weights["decoder"].load_state_dict()
    decoder.load_state_dict({name: value.float() for name, value in state.items()}, strict=True)
    return decoder.eval()


def build(spec: ModelSpec, encoder: FeatureEncoder, device: torch.device) -> AdainFamily:
    """The registry's builder for adain specs: the checked decoder over the shared encoder."""
    lite0 = trained_on_lite0(spec, encoder)
    assert lite0 is not None
    return AdainFamily(
        _check_spec(spec), lite0, load_decoder(spec), model_version=spec.name, device=device
    )


BUILDER = FamilyBuilder(family="adain", check=_check_spec, build=build)
