"""Sample images for the style-transfer tests: scikit-image's bundled photos, resized."""

from __future__ import annotations

import numpy as np
from PIL import Image
from skimage import data


def sample(name: str) -> np.ndarray:
    """One of scikit-image's bundled sample images (no download), as uint8 RGB."""
    return np.asarray(getattr(data, name)(), dtype=np.uint8)


def resized(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resizes uint8 RGB with Pillow's antialiasing filter."""
    picture = Image.fromarray(image).resize((width, height), Image.Resampling.LANCZOS)
    return np.asarray(picture, dtype=np.uint8)


def downscale(image: np.ndarray, long_side: int) -> np.ndarray:
    """Resizes so the long side is `long_side`, keeping the aspect ratio."""
    height, width = image.shape[:2]
    scale = long_side / max(height, width)
    return resized(image, round(height * scale), round(width * scale))
