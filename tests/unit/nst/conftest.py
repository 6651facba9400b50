"""Fixtures for the style-transfer tests: the pretrained encoder and small test images."""

from __future__ import annotations

import numpy as np
import pytest

from gouache.nst.encoders import Lite0Encoder, load_lite0
from tests.unit.nst.images import downscale, sample


@pytest.fixture(scope="session")
def encoder() -> Lite0Encoder:
    return load_lite0()


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """The astronaut photo at 80x80."""
    return downscale(sample("astronaut"), 80)


@pytest.fixture(scope="session")
def chelsea() -> np.ndarray:
    """The cat photo at 64x96."""
    return downscale(sample("chelsea"), 96)


@pytest.fixture(scope="session")
def stripes() -> np.ndarray:
    """A saturated red/blue/yellow diagonal-stripe style, 64x64."""
    rows, cols = np.mgrid[0:64, 0:64]
    palette = np.array([[230, 40, 40], [30, 60, 210], [250, 220, 50]], dtype=np.uint8)
    stripes: np.ndarray = palette[((rows + cols) // 6) % 3]
    return stripes


@pytest.fixture(scope="session")
def checker() -> np.ndarray:
    """A black-and-white 8-pixel checkerboard style, 64x64."""
    rows, cols = np.mgrid[0:64, 0:64]
    cells = (((rows // 8) + (cols // 8)) % 2 * 255).astype(np.uint8)
    return np.stack([cells, cells, cells], axis=2)
