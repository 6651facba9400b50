"""Small test images from scikit-image, encoded, so e2e jobs finish in seconds on a CPU."""

from __future__ import annotations

import numpy as np
import skimage.data
from skimage.transform import resize

from gouache.imaging.codec import encode


def small(name: str, side: int = 64) -> bytes:
    pixels = getattr(skimage.data, name)()[..., :3]
    scaled = resize(pixels, (side, side), anti_aliasing=True, preserve_range=True)
    return encode(np.clip(scaled, 0, 255).astype(np.uint8), "png")
