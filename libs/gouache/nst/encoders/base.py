"""What a family needs from an encoder: named activations for its losses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from torch import Tensor


class FeatureEncoder(Protocol):
    """A frozen image encoder: RGB in [0, 1], NCHW in; activations at named taps out."""

    taps: tuple[str, ...]

    def forward_features(self, x: Tensor, taps: Sequence[str]) -> dict[str, Tensor]:
        """The activations at `taps` (names from `self.taps`), keyed by name."""
        ...
