"""Universal style transfer (Li et al., 2017): whitening and colouring at several Lite0 taps.

Each level has a decoder trained only to rebuild the image from one tap of the frozen
EfficientNet-Lite0 encoder (`gouache train wct`); no decoder ever sees a style loss.
Inference goes coarse to fine: the content's features at the deepest tap are whitened
(their covariance made the identity) and coloured with the style's covariance and mean,
blended with the content's own features by `alpha`, and decoded; the decoded image is
encoded again at the next, shallower tap, transformed the same way, decoded, and so on.
Deep taps carry the style's larger structures (strokes, textures), shallow ones its
fine texture and palette.

The transforms are computed in float64 from eigendecompositions; eigenvalues are floored
at `eps` times their mean, so a flat image (a sky, a wall) whose features hardly vary
in some directions is not amplified into noise. A style's means and colouring matrices
are cached per (model version, style key) like adain's statistics. The eigendecomposition
does not export to ONNX, so the transform always runs in torch (a C x C eigenproblem, 16
channels at b1); the encoder up to each tap and each decoder export as graphs of their
own (`gouache.nst.export`), which `WctRunners` plugs in to run them with ONNX Runtime.

How wct.lite0-v1 was chosen (measured here: shared 2-core AMD EPYC, torch 2.15). Decoders
for b5 (64/48/24/16), b3 (48/24/16) and b1 (32/16) trained together on reconstruction
alone (mean absolute pixel error + relative feature error at their own and shallower
levels' taps), 256 px crops of 75 contents and 24 styles, batch 2, 700 steps in 30 min
on two cores shared with other work; held-out pixel error at the end: b1 0.027, b3 0.040,
b5 0.069. Every combination was run on `gouache eval`'s held-out grid (2 Kodak photos x 8
public-domain paintings, 256 px, alpha 1; medians; ratios to histogram matching, Lite1 is
the independent judge):

    levels       Lite0 style  content   Lite1 style  content
    b5, b3, b1   0.99x        2.09x     1.00x        2.16x
    b3, b1       0.93x        1.73x     0.94x        1.76x
    b5, b1       1.08x        2.09x     1.09x        2.12x
    b3           0.99x        1.66x     1.02x        1.69x
    b1           0.90x        1.24x     0.87x        1.28x
    adain.lite0-v1 (for reference)      0.90x        1.41x

With this little training the deeper decoders still blur, and a blurred level costs more
than its larger-scale statistics give, so wct.lite0-v1 whitens and colours at b1 alone.
The same pilot found that enlarging a small style before taking its statistics (a 256 px
style at `style_side` 512) imposes the enlargement's blur: b1 went from 0.95x to 0.88x of
the baseline (Lite1 style) once styles were never upsampled.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields

import torch
from torch import Tensor, nn

from gouache.lru import LruCache
from gouache.nst.base import (
    Cancellation,
    RGBImage,
    StylizeControls,
    check_cancellation,
)
from gouache.nst.batching import StylizeItem
from gouache.nst.encoders.base import FeatureEncoder
from gouache.nst.encoders.lite0 import Lite0Encoder
from gouache.nst.families.adain import (
    TAP_GEOMETRY,
    FloatImage,
    decoder_levels,
    finish,
    item_inputs,
)
from gouache.nst.families.wct_transform import (
    Colouring,
    mix_colourings,
    style_colouring,
    whiten_colour,
)
from gouache.nst.pixels import (
    KeyedStyle,
    long_side,
    pad_to_stride,
    resize_long_side,
    to_tensor,
)
from gouache.nst.specs import FamilyBuilder, ModelSpec, trained_on_lite0


def _default_widths() -> dict[str, tuple[int, ...]]:
    return {"b5": (64, 48, 24, 16), "b3": (48, 24, 16), "b1": (32, 16)}


@dataclass(frozen=True)
class WctConfig:
    """Everything that shapes a WCT result except the decoders' trained weights.

    levels: the taps transformed and decoded, deepest first (the order they run in).
    decoder_widths: per tap, channels of its decoder's levels, deepest first, one level
        per factor of two from the tap's stride down to full resolution.
    eps: eigenvalues of a covariance are floored at eps times their mean before the
        inverse square root is taken (whitening stays bounded on flat images).
    style_side: larger styles are resized to this long side before their statistics are
        taken (smaller ones are never enlarged).
    max_side: larger contents are stylized at this long side and resized back.
    tv_weight: smoothing applied when a request does not set one (adain's `smooth`).
    style_cache_size: how many styles' statistics the LRU cache keeps.
    """

    levels: tuple[str, ...] = ("b5", "b3", "b1")
    decoder_widths: Mapping[str, tuple[int, ...]] = field(default_factory=_default_widths)
    eps: float = 1e-4
    style_side: int = 512
    max_side: int = 1024
    tv_weight: float = 0.0
    style_cache_size: int = 32

    def __post_init__(self) -> None:
        object.__setattr__(self, "levels", tuple(str(tap) for tap in self.levels))
        widths = self.decoder_widths
        object.__setattr__(
            self,
            "decoder_widths",
            {str(tap): tuple(int(w) for w in value) for tap, value in widths.items()},
        )
        if not self.levels or len(set(self.levels)) != len(self.levels):
            raise ValueError(f"levels must be distinct taps, at least one; got {self.levels}")
        for tap in self.levels:
            if tap not in TAP_GEOMETRY:
                raise ValueError(f"unknown tap {tap!r}; known: {', '.join(TAP_GEOMETRY)}")
        order = [list(TAP_GEOMETRY).index(tap) for tap in self.levels]
        if order != sorted(order, reverse=True):
            raise ValueError(f"levels must run deepest first, got {self.levels}")
        if set(self.widths) != set(self.levels):
            raise ValueError(
                f"decoder_widths must name exactly the levels {list(self.levels)}, "
                f"got {sorted(self.widths)}"
            )
        for tap, value in self.widths.items():
            if len(value) != decoder_levels(tap) or any(w < 1 for w in value):
                raise ValueError(
                    f"decoder_widths[{tap}] needs {decoder_levels(tap)} positive widths "
                    f"(stride {TAP_GEOMETRY[tap][1]}), got {list(value)}"
                )
        if not self.eps > 0.0:
            raise ValueError(f"eps must be positive, got {self.eps}")
        if self.style_side < 32 or self.max_side < 64:
            raise ValueError("style_side must be at least 32 and max_side at least 64")
        if self.tv_weight < 0.0:
            raise ValueError(f"tv_weight must be zero or positive, got {self.tv_weight}")
        if self.style_cache_size < 1:
            raise ValueError(f"style_cache_size must be at least 1, got {self.style_cache_size}")

    @property
    def widths(self) -> Mapping[str, tuple[int, ...]]:
        """The decoders' widths by tap."""
        return self.decoder_widths

    @property
    def stride(self) -> int:
        """The largest stride of the levels: images are padded to a multiple of it."""
        return max(TAP_GEOMETRY[tap][1] for tap in self.levels)

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> WctConfig:
        """Builds a config from a spec's mapping, refusing keys it does not know."""
        known = {f.name for f in fields(cls)}
        unknown = set(values).difference(known)
        if unknown:
            raise ValueError(f"unknown WctConfig keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**values)  # type: ignore[arg-type]


class ReconstructionDecoder(nn.Module):
    """Tap features back to RGB: reflection-padded 3x3 convolutions, ReLU, bilinear x2.

    One convolution per level, then bilinear doubling (never a transposed convolution,
    whose uneven kernel overlap prints a grid at the stride's period); a final
    convolution maps to RGB (clamped by the caller).
    """

    def __init__(self, in_channels: int, widths: Sequence[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        previous = in_channels
        for level, width in enumerate(widths):
            layers += [nn.ReflectionPad2d(1), nn.Conv2d(previous, width, 3), nn.ReLU()]
            previous = width
            if level < len(widths) - 1:
                layers.append(nn.Upsample(scale_factor=2.0, mode="bilinear", align_corners=False))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(previous, 3, 3)]
        self.layers = nn.Sequential(*layers)

    def forward(self, features: Tensor) -> Tensor:
        decoded: Tensor = self.layers(features)
        return decoded


class WctDecoders(nn.Module):
    """One reconstruction decoder per level, keyed by tap (the trained module)."""

    def __init__(self, config: WctConfig) -> None:
        super().__init__()
        self.decoders = nn.ModuleDict(
            {
                tap: ReconstructionDecoder(TAP_GEOMETRY[tap][0], config.widths[tap])
                for tap in config.levels
            }
        )

    def decode(self, tap: str, features: Tensor) -> Tensor:
        """The image the decoder of `tap` rebuilds from those features."""
        decoded: Tensor = self.decoders[tap](features)
        return decoded


TensorMap = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class _BatchItem:
    """One item of `WctFamily.stylize_batch` up to the networks, and what finishes it."""

    content: FloatImage
    image: Tensor
    working: Tensor
    colourings: Mapping[str, Colouring]
    alpha: float
    tv_weight: float
    luminance_only: bool


@dataclass(frozen=True)
class WctRunners:
    """What runs the networks instead of torch: per tap, the encoder to that tap
    (1x3xHxW image to 1xCxhxw features) and its decoder (features back to an unclamped
    1x3xHxW image). The family keeps the transform, the resizing and the controls."""

    encode: Mapping[str, TensorMap]
    decode: Mapping[str, TensorMap]


class WctFamily:
    """Any style in one coarse-to-fine pass: Lite0 encoder, WCT, reconstruction decoders.

    Deterministic: no randomness, so `seed` has nothing to drive. Thread-safe: the
    networks are read-only and the style cache is locked.
    """

    name = "wct"

    def __init__(
        self,
        config: WctConfig,
        encoder: Lite0Encoder,
        decoders: WctDecoders,
        *,
        model_version: str = "wct",
        device: str | torch.device = "cpu",
        runners: WctRunners | None = None,
    ) -> None:
        if runners is not None:
            for role, graphs in (("encode", runners.encode), ("decode", runners.decode)):
                missing = set(config.levels).difference(graphs)
                if missing:
                    raise ValueError(f"no {role} runner for levels {sorted(missing)}")
        self._runners = runners
        self.config = config
        self.model_version = model_version
        self._device = torch.device(device)
        encoder = copy.deepcopy(encoder).eval().requires_grad_(False)
        self.encoder = encoder.to(self._device).to(memory_format=torch.channels_last)
        self.decoders = decoders.eval().requires_grad_(False).to(self._device)
        self.decoders.to(memory_format=torch.channels_last)
        self._cache: LruCache[tuple[str, str, str | None], dict[str, Colouring]] = LruCache(
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

    def stylize_batch(self, items: Sequence[StylizeItem]) -> list[RGBImage]:
        """`stylize` for each item, the network passes of equal-sized items batched.

        Items of one working size go through each level's encoder and decoder together
        (gouache.nst.batching); the transform between them is per item (its own
        whitening, its own mix of styles, its own alpha). Every item's cancellation is
        checked before each level; one that fired fails the call, and the caller runs
        the rest again one by one.
        """
        prepared = [self._begin(item) for item in items]
        groups: dict[tuple[int, int], list[int]] = {}
        for index, entry in enumerate(prepared):
            size = (int(entry.working.shape[-2]), int(entry.working.shape[-1]))
            groups.setdefault(size, []).append(index)
        finished: dict[int, RGBImage] = {}
        with torch.inference_mode():
            for members in groups.values():
                decoded = self._transfer_batch(
                    torch.cat([prepared[i].working for i in members]),
                    [prepared[i].colourings for i in members],
                    [prepared[i].alpha for i in members],
                    [items[i].cancellation for i in members],
                )
                for row, index in enumerate(members):
                    finished[index] = self._finish(prepared[index], decoded[row : row + 1])
        return [finished[index] for index in range(len(prepared))]

    def transfer(
        self,
        image: Tensor,
        colourings: Mapping[str, Colouring],
        alpha: float,
        *,
        cancellation: Cancellation | None = None,
    ) -> Tensor:
        """Coarse to fine over the levels: encode, WCT, blend by alpha, decode; 1x3xHxW.

        `cancellation` is checked before each level.
        """
        with torch.inference_mode():
            return self._transfer_batch(image, [colourings], [alpha], [cancellation])

    def _transfer_batch(
        self,
        images: Tensor,
        colourings: Sequence[Mapping[str, Colouring]],
        alphas: Sequence[float],
        cancellations: Sequence[Cancellation | None],
    ) -> Tensor:
        """`transfer` for an Nx3xHxW batch: row i with colourings[i] and alphas[i]."""
        height, width = int(images.shape[-2]), int(images.shape[-1])
        current = images
        for tap in self.config.levels:
            for cancellation in cancellations:
                check_cancellation(cancellation)
            features = self._encode(tap, pad_to_stride(current, self.config.stride))
            rows = [
                self._transform(features[i : i + 1], colourings[i][tap], alphas[i])
                for i in range(features.shape[0])
            ]
            decoded = self._decode(tap, rows[0] if len(rows) == 1 else torch.cat(rows))
            current = decoded[..., :height, :width].clamp(0.0, 1.0)
        return current

    def _transform(self, features: Tensor, colouring: Colouring, alpha: float) -> Tensor:
        """One item's 1xCxhxw features whitened, coloured and blended with them by alpha."""
        if alpha >= 1.0:
            return whiten_colour(features, colouring, self.config.eps)
        if alpha <= 0.0:
            return features
        target = whiten_colour(features, colouring, self.config.eps)
        return alpha * target + (1.0 - alpha) * features

    def _begin(self, item: StylizeItem) -> _BatchItem:
        """Checks an item and derives what its passes need, as `stylize` does."""
        inputs = item_inputs(item, self._device, self.config.max_side)
        per_style = [self._style_colourings(style) for style in inputs.styles]
        mixed = {
            tap: mix_colourings([colourings[tap] for colourings in per_style], inputs.mix)
            for tap in self.config.levels
        }
        controls = item.controls
        return _BatchItem(
            content=inputs.content,
            image=inputs.image,
            working=inputs.working,
            colourings=mixed,
            alpha=controls.alpha,
            tv_weight=self.config.tv_weight if controls.tv_weight is None else controls.tv_weight,
            luminance_only=controls.luminance_only,
        )

    def _finish(self, item: _BatchItem, decoded: Tensor) -> RGBImage:
        """An item's decoded working image back to its size, smoothed, as uint8 RGB."""
        return finish(decoded, item.image, item.content, item.tv_weight, item.luminance_only)

    def _encode(self, tap: str, image: Tensor) -> Tensor:
        if self._runners is not None:
            return self._runners.encode[tap](image)
        return self.encoder.forward_features(image, (tap,))[tap]

    def _decode(self, tap: str, features: Tensor) -> Tensor:
        if self._runners is not None:
            return self._runners.decode[tap](features)
        return self.decoders.decode(tap, features)

    def _style_colourings(self, style: KeyedStyle) -> dict[str, Colouring]:
        key = (self.model_version, *style.key)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        with torch.inference_mode():
            image = to_tensor(style.pixels, self._device)
            # Never upsampled: an enlarged style's covariance is a blurred one, and WCT
            # would paint that blur into the result.
            image = resize_long_side(image, min(long_side(image), self.config.style_side))
            padded = pad_to_stride(image, self.config.stride)
            if self._runners is None:
                features = self.encoder.forward_features(padded, self.config.levels)
            else:
                features = {tap: self._encode(tap, padded) for tap in self.config.levels}
            colourings = {
                tap: style_colouring(features[tap], self.config.eps) for tap in self.config.levels
            }
        self._cache.put(key, colourings)
        return colourings

    def cached_styles(self) -> int:
        """How many styles' statistics are cached now; at most `style_cache_size`."""
        return len(self._cache)


def _check_spec(spec: ModelSpec) -> WctConfig:
    """A WCT spec needs Lite0, a valid config and exactly one weights file, its decoders."""
    trained_on_lite0(spec)
    if set(spec.weights) != {"decoders"}:
        raise ValueError(
            f"{spec.name}: wct needs exactly one weights file, 'decoders'; "
            f"got {sorted(spec.weights)}"
        )
    return WctConfig.from_mapping(spec.config)


def load_decoders(spec: ModelSpec) -> WctDecoders:
    """The spec's decoders, sha256-checked and loaded strictly, in float32."""
    config = _check_spec(spec)
    decoders = WctDecoders(config)
    state = spec.weights["decoders"].load_state_dict()
    decoders.load_state_dict({name: value.float() for name, value in state.items()}, strict=True)
    return decoders.eval()


def build(spec: ModelSpec, encoder: FeatureEncoder, device: torch.device) -> WctFamily:
    """The registry's builder for wct specs: the checked decoders over the shared encoder."""
    lite0 = trained_on_lite0(spec, encoder)
    assert lite0 is not None
    return WctFamily(
        _check_spec(spec), lite0, load_decoders(spec), model_version=spec.name, device=device
    )


BUILDER = FamilyBuilder(family="wct", check=_check_spec, build=build)
