"""Pretrained image encoders whose activations drive the style and content losses."""

from gouache.nst.encoders.lite0 import (
    LITE0_IMAGENET,
    LITE0_TAPS,
    EncoderWeights,
    Lite0Encoder,
    WeightsIntegrityError,
    load_lite0,
)

__all__ = [
    "LITE0_IMAGENET",
    "LITE0_TAPS",
    "EncoderWeights",
    "Lite0Encoder",
    "WeightsIntegrityError",
    "load_lite0",
]
