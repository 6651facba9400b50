"""Pretrained image encoders whose activations drive the style and content losses."""

from gouache.nst.encoders.base import FeatureEncoder
from gouache.nst.encoders.lite0 import (
    LITE0_IMAGENET,
    LITE0_TAPS,
    EncoderWeights,
    Lite0Encoder,
    WeightsIntegrityError,
    load_lite0,
)
from gouache.nst.encoders.lite1 import LITE1_IMAGENET, LITE1_TAPS, Lite1Encoder, load_lite1
from gouache.nst.encoders.vgg19 import VGG19_TAPS, Vgg19Encoder, load_vgg19

__all__ = [
    "LITE0_IMAGENET",
    "LITE0_TAPS",
    "LITE1_IMAGENET",
    "LITE1_TAPS",
    "VGG19_TAPS",
    "EncoderWeights",
    "FeatureEncoder",
    "Lite0Encoder",
    "Lite1Encoder",
    "Vgg19Encoder",
    "WeightsIntegrityError",
    "load_lite0",
    "load_lite1",
    "load_vgg19",
]
