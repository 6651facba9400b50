"""What every style family offers the inference service: one `stylize` call and its controls."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from gouache.runtime.errors import InvalidArgument

RGBImage = npt.NDArray[np.uint8]
"""An HxWx3 uint8 RGB image, the currency between services and families."""


@dataclass(frozen=True)
class StylizeControls:
    """All controls a request can carry; every family honours every one of them.

    alpha: style strength, 0 (the content unchanged) to 1 (full style).
    tv_weight: smoothness penalty; None means the model's configured default.
    luminance_only: keep the content's colours, take only the stylized luminance.
    histogram_match: recolour the styles to the content's colour histogram first.
    seed: makes the result bit-identical across runs on the same runtime.
    """

    alpha: float = 1.0
    tv_weight: float | None = None
    luminance_only: bool = False
    histogram_match: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise InvalidArgument(
                f"alpha must be between 0 and 1, got {self.alpha}", field="params.alpha"
            )
        if self.tv_weight is not None and self.tv_weight < 0.0:
            raise InvalidArgument(
                f"tv_weight must be zero or positive, got {self.tv_weight}",
                field="params.tv_weight",
            )


class Canceled(Exception):
    """A stylization stopped early because its `Cancellation` fired: nobody wants the result."""


class Cancellation:
    """A flag a caller sets from any thread; a running stylization stops at its next check.

    A thread cannot be interrupted, so the computation polls: families call `check()`
    between their steps (each optimisation step of gatys, each level or pass of the
    networks), which raises `Canceled` once `cancel()` was called. The engine knows
    nothing of who cancels: the inference service sets it when the gRPC call that asked
    for the work is cancelled or runs past its deadline.
    """

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        """Asks the computation to stop at its next check; calling it again changes nothing."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        """Whether `cancel()` was called."""
        return self._event.is_set()

    def check(self) -> None:
        """Raises `Canceled` if `cancel()` was called; cheap enough to call every step."""
        if self._event.is_set():
            raise Canceled("the stylization was canceled by its caller")


def check_cancellation(cancellation: Cancellation | None) -> None:
    """`cancellation.check()`, for the optional token every `stylize` takes."""
    if cancellation is not None:
        cancellation.check()


class StyleFamily(Protocol):
    """A way of stylizing: optimisation (gatys), AdaIN, or a feed-forward network."""

    name: str

    def stylize(
        self,
        content: RGBImage,
        styles: Sequence[RGBImage],
        weights: Sequence[float],
        controls: StylizeControls,
        *,
        style_keys: Sequence[str] | None = None,
        cancellation: Cancellation | None = None,
    ) -> RGBImage:
        """Returns the content (uint8 HxWx3) painted in the weighted mix of the styles.

        The output has the content's height and width. `weights` (one per style) need not
        sum to one; families normalise them. `style_keys`, one stable id per style (e.g.
        the sha256 of its bytes), lets a family cache what it derives from a style, so
        tiles of one image do not recompute it. `cancellation`, when given, is checked
        between steps; once it fires the call raises `Canceled` instead of finishing.
        """
        ...


def trained_style_keys(family: StyleFamily) -> tuple[str, ...]:
    """Style keys a family that paints only its trained styles recognises; () for any style.

    A feed-forward family refuses other style images; warm-ups and smoke tests pass one
    of these keys (the sha256 of the style's catalog file) with any image.
    """
    styles = getattr(family, "trained_styles", ())
    return tuple(str(style.sha256) for style in styles)


def validate_request(
    content: RGBImage,
    styles: Sequence[RGBImage],
    weights: Sequence[float],
    style_keys: Sequence[str] | None = None,
) -> tuple[float, ...]:
    """Checks images, weights and style keys; returns the weights normalised to sum to one.

    Families call this first so a bad request fails fast with an error naming the field,
    instead of deep inside the numerics.
    """
    _check_image(content, field="content")
    if not styles:
        raise InvalidArgument("at least one style image is required", field="styles")
    for index, style in enumerate(styles):
        _check_image(style, field=f"styles[{index}]")
    if style_keys is not None and len(style_keys) != len(styles):
        raise InvalidArgument(
            f"got {len(style_keys)} style keys for {len(styles)} styles", field="styles"
        )
    if len(weights) != len(styles):
        raise InvalidArgument(
            f"got {len(weights)} style weights for {len(styles)} styles", field="params.weights"
        )
    if any(not np.isfinite(w) or w < 0.0 for w in weights) or sum(weights) <= 0.0:
        raise InvalidArgument(
            "style weights must be finite, non-negative and not all zero", field="params.weights"
        )
    total = float(sum(weights))
    return tuple(float(w) / total for w in weights)


def _check_image(image: RGBImage, *, field: str) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise InvalidArgument(f"{field} must be a uint8 numpy array", field=field)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise InvalidArgument(
            f"{field} must be an HxWx3 RGB image, got shape {image.shape}", field=field
        )
