"""What an upload's bytes must pass before anything is stored: validation and content safety.

Untrusted bytes are decoded in full (`validate_and_decode`) and, when content safety is on,
the same decoded pixels are scored by the NSFW classifier: one decode, in one worker thread,
under one semaphore that bounds the memory both hold. The classifier sits behind the
`ContentScorer` port; the adapter (services/storage/safety.py) runs open_nsfw on ONNX Runtime.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from gouache.imaging.codec import ImageHeader, ImageLimits, inspect_header, validate_and_decode
from gouache.runtime.errors import InvalidArgument

UNSAFE_CONTENT = "unsafe_content"


class ContentScorer(Protocol):
    """Scores decoded pixels for content safety; called in a worker thread, maybe at once."""

    def score(self, pixels: NDArray[np.uint8]) -> float:
        """How likely (0 to 1) the image (H x W x 3 RGB) is not safe for work."""
        ...


@dataclass(frozen=True)
class ContentSafety:
    """The classifier and the score from which an upload is refused."""

    scorer: ContentScorer
    threshold: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"the NSFW threshold must be within 0 and 1, got {self.threshold}")

    def refuses(self, score: float) -> bool:
        """At or above the threshold: a threshold of 0 refuses every image."""
        return score >= self.threshold


@dataclass(frozen=True)
class Screened:
    """What the checks found: the image's header facts and its content-safety score.

    nsfw_score is None when nothing was scored (trusted bytes, or content safety off).
    """

    header: ImageHeader
    nsfw_score: float | None


class Screening:
    """Runs the checks off the event loop, at most `concurrency` images at once."""

    def __init__(
        self, limits: ImageLimits, *, concurrency: int, safety: ContentSafety | None
    ) -> None:
        self.limits = limits
        self.safety = safety
        # Each decode holds up to max_pixels * 3 bytes (and the classifier a copy of them
        # while it scores); this bounds how many at once.
        self._slots = asyncio.Semaphore(concurrency)

    async def screen(
        self, data: bytes, *, declared_content_type: str | None, trusted: bool
    ) -> Screened:
        """Checks the bytes; raises gouache.imaging.errors.ImageRejected for a bad image.

        `trusted` bytes (a service's own result, written by our encoder) get the header
        checks only and are not scored.
        """
        if trusted:
            header = inspect_header(
                data, declared_content_type=declared_content_type, limits=self.limits
            )
            return Screened(header=header, nsfw_score=None)
        async with self._slots:
            return await asyncio.to_thread(self._decode_and_score, data, declared_content_type)

    def refuses(self, screened: Screened) -> bool:
        """Whether content safety refuses the image (never when it was not scored)."""
        return (
            self.safety is not None
            and screened.nsfw_score is not None
            and self.safety.refuses(screened.nsfw_score)
        )

    def _decode_and_score(self, data: bytes, declared_content_type: str | None) -> Screened:
        decoded = validate_and_decode(
            data, declared_content_type=declared_content_type, limits=self.limits
        )
        score = None if self.safety is None else self.safety.scorer.score(decoded.pixels)
        header = ImageHeader(
            format=decoded.format,
            content_type=decoded.content_type,
            width=decoded.width,
            height=decoded.height,
            sha256=decoded.sha256,
        )
        return Screened(header=header, nsfw_score=score)


def unsafe_content() -> InvalidArgument:
    """The refusal of an image the content-safety filter scored at or above its threshold.

    INVALID_ARGUMENT, not FAILED_PRECONDITION: the image itself is what is refused, so the
    same bytes fail the same way whatever the state of the system; the score is logged,
    not returned, so the filter cannot be probed one score at a time.
    """
    return InvalidArgument(
        "the image was refused by the content-safety filter: it was classified as likely "
        "not safe for work (NSFW); nothing was stored. Upload a different image; if you "
        "think this is a mistake, ask your administrator",
        field="image",
        reason=UNSAFE_CONTENT,
    )
