"""Gram-statistics style distance used by the tests to judge how stylized an image is."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from gouache.nst.encoders import Lite0Encoder
from gouache.nst.losses import gram

# A broad spread of depths, not the family's own taps, so tests do not grade its homework.
_TAPS = ("stem", "b1", "b3", "b5", "b8", "b11", "b15")


def _tensor(image: np.ndarray, size: tuple[int, int] | None = None) -> torch.Tensor:
    x = torch.from_numpy(image.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    if size is not None and tuple(x.shape[-2:]) != size:
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    return x


def style_distance(encoder: Lite0Encoder, image: np.ndarray, style: np.ndarray) -> float:
    """Mean relative Gram error between `image` and `style` (resized to the same long side)."""
    height, width = style.shape[:2]
    scale = max(image.shape[:2]) / max(height, width)
    with torch.no_grad():
        ours = encoder.forward_features(_tensor(image), _TAPS)
        size = (round(height * scale), round(width * scale))
        theirs = encoder.forward_features(_tensor(style, size), _TAPS)
    errors = [
        float((gram(ours[t]) - gram(theirs[t])).norm() / gram(theirs[t]).norm()) for t in _TAPS
    ]
    return float(np.mean(errors))
