"""Sample photographs for the imaging tests, from scikit-image's bundled data (no network)."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from tests.unit.imaging.samples import sample


@pytest.fixture(scope="session")
def astronaut() -> NDArray[np.uint8]:
    """512x512 RGB portrait with flat areas and sharp edges."""
    return sample("astronaut")


@pytest.fixture(scope="session")
def chelsea() -> NDArray[np.uint8]:
    """451x300 RGB cat photo; not square, so width/height mix-ups show."""
    return sample("chelsea")


@pytest.fixture(scope="session")
def coffee() -> NDArray[np.uint8]:
    """600x400 RGB photo with warm colours unlike the other two."""
    return sample("coffee")
