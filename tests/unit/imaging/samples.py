"""Typed access to scikit-image's bundled sample photographs (no network needed)."""

from __future__ import annotations

import numpy as np
import skimage.data
from numpy.typing import NDArray


def sample(name: str) -> NDArray[np.uint8]:
    """One of scikit-image's bundled images, such as "astronaut", as a uint8 array."""
    loader = getattr(skimage.data, name)
    return np.asarray(loader(), dtype=np.uint8)
