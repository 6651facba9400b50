"""Feed-forward family: one small image-transformation network with conditional instance norm.

The network (Johnson et al., 2016, made small: 16/32/64 channels, two stride-2
convolutions, four residual blocks at a quarter of the resolution, nearest-neighbour
upsampling; 356k parameters, 0.7 MB in float16) paints in one pass. Every
instance-norm layer takes its scale and shift from a table with one row per *slot*
(Dumoulin et al., 2017): slots 1..n are the curated styles the model was trained on;
slot 0 was trained to reproduce the content (see alpha below). A request is served so:

- styles: each style image given is mapped to its trained slot (`StyleIndex`: by the
  catalog sha256 in its key, the sha256 of its pixels, or nearest Lite0 Gram
  statistics), and their rows are averaged with the request's weights;
- alpha blends pixels: `alpha * stylized + (1 - alpha) * content`; alpha 0 returns the
  content itself, exactly, without running the network. Measured on the first
  feedforward.lite0-v1 weights (content weight 1, since retrained at 10; 4 held-out
  photos x its first 4 styles at 256 px, `gouache.nst.quality` medians, style /
  content distance; the CIN variant ran `run` with rows `alpha * style + (1 - alpha) *
  identity`): the pixel blend gives 0.694 / 0.457, 0.588 / 0.731, 0.479 / 0.897 at
  alpha 0.25, 0.5, 0.75; interpolating the CIN rows towards the identity row instead
  gives 0.673 / 0.792, 0.554 / 0.879, 0.446 / 0.957. At equal content distance
  (~0.89) the blend is closer to the style (0.479 vs 0.554), and the interpolated rows
  shift hues (a starry-night sky turned orange at 0.25) rather than weakening the style;
- the output is computed with an 8-pixel mirrored frame around the content
  (`BORDER_MARGIN`), cropped away: trained on small crops, the network paints a band of
  bright dashes along the image border, which the frame moves outside the result.

Colour controls act on the network's output, as the styles are fixed in the weights:
`histogram_match` recolours the stylized image to the content's colour histogram (per
channel, `gouache.imaging.color.match_histogram`), `luminance_only` keeps its luminance
and the content's chroma. `tv_weight` above the value the model was trained with
smooths the output further (`smooth_tv`); at or below it the output is the network's
own. The network has no randomness: `seed` does not change the output, and the same
request gives the same bytes on the same runtime.

The network itself is in feedforward_network.py, the style recognition (`StyleIndex`) in
feedforward_styles.py; this module holds the family, its config and its model files.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import Tensor

from gouache.imaging.color import luminance_transfer, match_histogram, to_float32, to_uint8
from gouache.nst.base import (
    Cancellation,
    RGBImage,
    StylizeControls,
    check_cancellation,
    validate_request,
)
from gouache.nst.batching import StylizeItem
from gouache.nst.encoders.base import FeatureEncoder
from gouache.nst.encoders.lite0 import Lite0Encoder, WeightsIntegrityError, file_sha256
from gouache.nst.families.feedforward_network import NetworkShape, TransformNet
from gouache.nst.families.feedforward_styles import (
    IdentifySettings,
    StyleIndex,
    TrainedStyle,
    style_grams,
)
from gouache.nst.pixels import resize_long_side, to_numpy, to_tensor
from gouache.nst.specs import FamilyBuilder, ModelSpec, ModelWeights, trained_on_lite0

FloatImage = npt.NDArray[np.float32]
NetworkRunner = Callable[[Tensor, Tensor], Tensor]
"""Runs the transformation network: (padded content NCHW in [0, 1], CIN params) -> image."""

IDENTITY_SLOT = 0
"""The CIN-table row trained to reproduce the content (kept in v1's table; alpha blends
pixels instead, as measured in the module docstring)."""

BORDER_MARGIN = 8
"""Mirrored pixels around the content while the network runs, cropped away after."""

MANIFEST = "manifest.json"
NETWORK_FILE = "network.pt"
STYLE_INDEX_FILE = "style_index.pt"


@dataclass(frozen=True)
class FeedforwardModel:
    """A loaded model directory: network, trained styles and what the manifest says."""

    network: TransformNet
    styles: tuple[TrainedStyle, ...]
    grams: Mapping[int, Mapping[str, Tensor]]
    identify: IdentifySettings
    tv_weight: float
    manifest: Mapping[str, Any]


def save_model(
    directory: Path,
    network: TransformNet,
    styles: Sequence[tuple[TrainedStyle, RGBImage]],
    identify: IdentifySettings,
    encoder: Lite0Encoder,
    *,
    tv_weight: float,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Writes a model directory `load_model` reads; returns the manifest it wrote.

    The network is stored in float16 (computed in float32 after loading), the style
    index holds each trained style's identifying Gram matrices, and the manifest
    records the network shape, the styles, the identification settings, the trained
    TV weight, the sha256 of both files, and whatever `extra` adds (training details).
    Slots of `styles` must be 1..n in order; slot 0 is the identity.
    """
    if [style.slot for style, _ in styles] != list(range(1, network.slots)):
        raise ValueError(f"styles must fill slots 1..{network.slots - 1} in order")
    directory.mkdir(parents=True, exist_ok=True)
    half = {
        name: value.detach().to("cpu", torch.float16).contiguous()
        for name, value in network.state_dict().items()
    }
    torch.save(half, directory / NETWORK_FILE)
    cpu = torch.device("cpu")
    index = {
        f"{style.slot}/{tap}": value.contiguous()
        for style, pixels in styles
        for tap, value in style_grams(encoder, pixels, identify, cpu).items()
    }
    torch.save(index, directory / STYLE_INDEX_FILE)
    manifest: dict[str, Any] = dict(extra or {})
    training = dict(manifest.get("training", {}))
    training["tv_weight"] = tv_weight
    manifest.update(
        family="feedforward",
        network=network.shape.to_json(),
        parameters=sum(int(v.numel()) for v in half.values()),
        storage_dtype="float16",
        compute_dtype="float32",
        input={"layout": "NCHW RGB", "range": [0.0, 1.0], "multiple_of": network.shape.factor},
        identity_slot=IDENTITY_SLOT,
        styles=[style.to_json() for style, _ in styles],
        identify=identify.to_json(),
        training=training,
        files={name: file_sha256(directory / name) for name in (NETWORK_FILE, STYLE_INDEX_FILE)},
    )
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def load_model(
    directory: Path, *, manifest_sha256: str | None = None, device: str | torch.device = "cpu"
) -> FeedforwardModel:
    """Loads a model directory, refusing it unless every file has its recorded sha256.

    `manifest_sha256` (the catalogue's pin) checks the manifest itself; the manifest's
    `files` table then checks the network and style-index files it lists.
    """
    manifest_path = directory / MANIFEST
    if manifest_sha256 is not None:
        _check_sha256(manifest_path, manifest_sha256)
    manifest: dict[str, Any] = json.loads(manifest_path.read_text())
    files: Mapping[str, str] = manifest["files"]
    for name in (NETWORK_FILE, STYLE_INDEX_FILE):
        if name not in files:
            raise WeightsIntegrityError(f"{manifest_path} lists no sha256 for {name}")
        _check_sha256(directory / name, files[name])
    shape = NetworkShape.from_json(manifest["network"])
    styles = tuple(TrainedStyle.from_json(s) for s in manifest["styles"])
    network = TransformNet(shape, slots=len(styles) + 1)
    state = torch.load(directory / NETWORK_FILE, map_location="cpu", weights_only=True)
    network.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    network.eval().requires_grad_(False)
    index = torch.load(directory / STYLE_INDEX_FILE, map_location="cpu", weights_only=True)
    grams = {
        style.slot: {
            tap: index[f"{style.slot}/{tap}"].float() for tap in manifest["identify"]["taps"]
        }
        for style in styles
    }
    return FeedforwardModel(
        network=network.to(device),
        styles=styles,
        grams=grams,
        identify=IdentifySettings.from_json(manifest["identify"]),
        tv_weight=float(manifest["training"]["tv_weight"]),
        manifest=manifest,
    )


WEIGHT_ROLES: tuple[str, ...] = ("manifest", "network", "style_index")
"""The files a feedforward spec declares, by role; they must lie in one directory."""

_ROLE_FILES: Mapping[str, str] = {
    "manifest": MANIFEST,
    "network": NETWORK_FILE,
    "style_index": STYLE_INDEX_FILE,
}


def model_weights(directory_in_package: str, sha256: Mapping[str, str]) -> dict[str, ModelWeights]:
    """The `ModelSpec.weights` of a model directory shipped in `gouache.nst`, by role."""
    return {
        role: ModelWeights(
            path_in_package=f"{directory_in_package}/{_ROLE_FILES[role]}",
            sha256=sha256[role],
            description=f"feedforward {role}",
        )
        for role in WEIGHT_ROLES
    }


@dataclass(frozen=True)
class FeedforwardConfig:
    """How a registered feedforward model serves requests (the network is in its manifest).

    max_side: contents with a longer side are stylized at this size and resized back,
        bounding time and memory (one float32 activation at 1024 px with 16 channels
        is 64 MiB); the tiler keeps tiles below it anyway.
    style_cache_size: how many style identifications are cached (by key or digest).
    """

    max_side: int = 1024
    style_cache_size: int = 256

    def __post_init__(self) -> None:
        if self.max_side < 16:
            raise ValueError(f"max_side must be at least 16 pixels, got {self.max_side}")
        if self.style_cache_size < 1:
            raise ValueError("style_cache_size must be at least 1")

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> FeedforwardConfig:
        """Builds a config from a registry entry's `config`, refusing unknown keys."""
        known = {"max_side", "style_cache_size"}
        unknown = set(values).difference(known)
        if unknown:
            raise ValueError(
                f"unknown FeedforwardConfig keys {sorted(unknown)}; known: {sorted(known)}"
            )
        return cls(**values)  # type: ignore[arg-type]


def _check_spec(spec: ModelSpec) -> FeedforwardConfig:
    """A feedforward spec has Lite0, a valid config and all three files in one directory."""
    trained_on_lite0(spec)
    config = FeedforwardConfig.from_mapping(spec.config)
    if set(spec.weights) != set(WEIGHT_ROLES):
        raise ValueError(
            f"{spec.name}: feedforward needs weights {list(WEIGHT_ROLES)}, got {sorted(spec.weights)}"
        )
    folders = {str(Path(w.path_in_package).parent) for w in spec.weights.values()}
    if len(folders) != 1:
        raise ValueError(
            f"{spec.name}: the feedforward files must share one directory, got {folders}"
        )
    for role, weights in spec.weights.items():
        if Path(weights.path_in_package).name != _ROLE_FILES[role]:
            raise ValueError(
                f"{spec.name}: weights {role!r} must be a {_ROLE_FILES[role]}, "
                f"got {weights.path_in_package}"
            )
    return config


def load_shipped(
    weights: Mapping[str, ModelWeights], *, device: str | torch.device = "cpu"
) -> FeedforwardModel:
    """Loads a model from the package, each file checked against the spec's sha256 first."""
    paths = {role: weights[role].verified_path() for role in WEIGHT_ROLES}
    return load_model(
        paths["manifest"].parent, manifest_sha256=weights["manifest"].sha256, device=device
    )


def build(spec: ModelSpec, encoder: FeatureEncoder, device: torch.device) -> FeedforwardFamily:
    """The registry's builder: the shipped network over the shared encoder."""
    config = _check_spec(spec)
    lite0 = trained_on_lite0(spec, encoder)
    assert lite0 is not None
    return FeedforwardFamily(
        load_shipped(spec.weights, device=device), lite0, config=config, device=device
    )


def _check_sha256(path: Path, expected: str) -> None:
    actual = file_sha256(path)
    if actual != expected:
        raise WeightsIntegrityError(
            f"{path} has sha256 {actual}, expected {expected}; the model directory was "
            "changed or damaged: reinstall the package or re-export the model"
        )


class FeedforwardFamily:
    """Stylizes in one network pass with the trained styles' CIN parameters (see module)."""

    name = "feedforward"

    def __init__(
        self,
        model: FeedforwardModel,
        encoder: Lite0Encoder,
        *,
        config: FeedforwardConfig | None = None,
        device: str | torch.device = "cpu",
        runner: NetworkRunner | None = None,
    ) -> None:
        """`runner` replaces the torch network (e.g. its ONNX export); same inputs, output."""
        self.model = model
        self.config = FeedforwardConfig() if config is None else config
        self._device = torch.device(device)
        self._runner: NetworkRunner = model.network if runner is None else runner
        self.index = StyleIndex(
            model.styles,
            model.grams,
            model.identify,
            encoder,
            self._device,
            cache_size=self.config.style_cache_size,
        )

    @property
    def trained_styles(self) -> tuple[TrainedStyle, ...]:
        return self.model.styles

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
        """Returns `content` painted in the weighted mix of `styles` (all trained), same size."""
        item = StylizeItem(content, styles, weights, controls, style_keys, cancellation)
        return self.stylize_batch([item])[0]

    def stylize_batch(self, items: Sequence[StylizeItem]) -> list[RGBImage]:
        """`stylize` for each item, the items' network passes batched (gouache.nst.batching).

        CIN parameters are per item (one row each), so a batch mixes styles freely;
        contents of one size share a forward pass, larger than `max_side` ones run alone.
        Each item's cancellation is checked before the passes (one pass is one step).
        """
        finished: dict[int, RGBImage] = {}
        pending: list[tuple[int, FloatImage, Tensor]] = []
        for index, item in enumerate(items):
            mix = validate_request(item.content, item.styles, item.weights, item.style_keys)
            slots = [
                self.index.identify(
                    style,
                    None if item.style_keys is None else item.style_keys[i],
                    field=f"styles[{i}]",
                ).slot
                for i, style in enumerate(item.styles)
            ]
            if item.controls.alpha == 0.0:
                finished[index] = item.content.copy()
            else:
                pending.append((index, to_float32(item.content), self.params_for(slots, mix)))
        for item in items:
            check_cancellation(item.cancellation)
        groups: dict[tuple[int, ...], list[tuple[int, FloatImage, Tensor]]] = {}
        for entry in pending:
            # A content larger than max_side runs alone, through `run`, which resizes it.
            fits = max(entry[1].shape[:2]) <= self.config.max_side
            groups.setdefault(entry[1].shape if fits else (-1, entry[0]), []).append(entry)
        with torch.inference_mode():
            for members in groups.values():
                contents = [content for _, content, _ in members]
                params = torch.cat([row for _, _, row in members])
                stylized = (
                    self._run_padded(contents, params)
                    if len(members) > 1
                    else [self.run(contents[0], params)]
                )
                for (index, content, _), output in zip(members, stylized, strict=True):
                    finished[index] = self._finish(output, content, items[index].controls)
        return [finished[index] for index in range(len(items))]

    def _finish(
        self, stylized: FloatImage, content: FloatImage, controls: StylizeControls
    ) -> RGBImage:
        """The network's output with the request's smoothing, colour controls and alpha."""
        tv_weight = self.model.tv_weight if controls.tv_weight is None else controls.tv_weight
        if tv_weight > self.model.tv_weight:
            stylized = smooth_tv(stylized, tv_weight / self.model.tv_weight - 1.0)
        if controls.histogram_match:
            stylized = match_histogram(source=stylized, reference=content)
        if controls.alpha < 1.0:
            stylized = (
                np.float32(controls.alpha) * stylized + np.float32(1.0 - controls.alpha) * content
            )
        if controls.luminance_only:
            stylized = luminance_transfer(stylized, content)
        return to_uint8(stylized)

    def params_for(self, slots: Sequence[int], mix: Sequence[float]) -> Tensor:
        """CIN parameters (1 x 2C): the trained rows of `slots` averaged with weights `mix`.

        Each layer's input is instance-normalised whatever the style, so a weighted
        average of the rows' affine maps is the affine map of the weighted average.
        """
        weights = torch.zeros(1, self.model.network.slots, device=self._device)
        for slot, share in zip(slots, mix, strict=True):
            weights[0, slot] += share
        return self.model.network.slot_params(weights)

    def run(self, content: FloatImage, params: Tensor) -> FloatImage:
        """Runs the network on a float HxWx3 image at most `max_side` long, same size out."""
        height, width = content.shape[:2]
        if max(height, width) <= self.config.max_side:
            return self._run_padded([content], params)[0]
        image = to_tensor(content, self._device)
        small = resize_long_side(image, self.config.max_side)
        stylized = to_tensor(self._run_padded([to_numpy(small)], params)[0], self._device)
        resized = F.interpolate(
            stylized, size=(height, width), mode="bilinear", align_corners=False
        )
        return to_numpy(resized.clamp(0.0, 1.0))

    def _run_padded(self, contents: Sequence[FloatImage], params: Tensor) -> list[FloatImage]:
        """Pads to the network's factor inside a mirrored frame, runs it, crops back.

        Several contents of one size (one row of `params` each) run as one batch.
        """
        shape = self.model.network.shape
        framed = [
            pad_to_multiple(content, shape.factor, shape.min_side, margin=BORDER_MARGIN)
            for content in contents
        ]
        batch = torch.cat([to_tensor(padded, self._device) for padded, _ in framed])
        output = self._runner(batch, params)
        return [
            to_numpy(output[row : row + 1, :, top : top + height, left : left + width])
            for row, (_, (top, left, height, width)) in enumerate(framed)
        ]


def pad_to_multiple(
    image: FloatImage, factor: int, min_side: int, *, margin: int = 0
) -> tuple[FloatImage, tuple[int, int, int, int]]:
    """Mirror-pads HxWx3 to sides that are multiples of `factor` (and >= `min_side`).

    At least `margin` pixels are added on every side. Returns the padded image and the
    (top, left, height, width) box of the original in it. Padding is split between both
    sides so the image stays centred, and mirrors the edge pixels (numpy "symmetric",
    valid for any pad width, unlike torch's reflection).
    """
    height, width = image.shape[:2]

    def target(side: int) -> int:
        return max(min_side, -(-(side + 2 * margin) // factor) * factor)

    pad_h, pad_w = target(height) - height, target(width) - width
    top, left = pad_h // 2, pad_w // 2
    padded = np.pad(image, ((top, pad_h - top), (left, pad_w - left), (0, 0)), mode="symmetric")
    return np.ascontiguousarray(padded, dtype=np.float32), (top, left, height, width)


def smooth_tv(image: FloatImage, strength: float, *, iterations: int = 8) -> FloatImage:
    """Extra smoothness for a `tv_weight` above the trained one, `strength` = ratio - 1.

    Approximately minimises ||y - x||^2 + strength * TV2(y) (TV2: squared neighbour
    differences, as `gouache.nst.losses.tv_loss`) with a few Jacobi iterations, edges
    replicated: a deterministic, cheap smoothing that grows with the requested weight
    and is the identity at strength 0.
    """
    if strength <= 0.0:
        return image
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
    y = x.clone()
    for _ in range(iterations):
        padded = F.pad(y.permute(2, 0, 1)[None], (1, 1, 1, 1), mode="replicate")[0].permute(1, 2, 0)
        neighbours = padded[:-2, 1:-1] + padded[2:, 1:-1] + padded[1:-1, :-2] + padded[1:-1, 2:]
        y = (x + strength * neighbours) / (1.0 + 4.0 * strength)
    smoothed: FloatImage = y.numpy()
    return smoothed


BUILDER = FamilyBuilder(family="feedforward", check=_check_spec, build=build)
