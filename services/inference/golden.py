"""The fixed golden set a served version is measured on, and the measurement (no gRPC)."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING

from gouache.nst.base import StyleFamily, StylizeControls
from gouache.runtime.errors import FailedPrecondition

if TYPE_CHECKING:
    from gouache.nst.eval_grid import EvalGrid
    from gouache.nst.quality import QualityMeter

GOLDEN_CONTENTS: tuple[str, ...] = ("astronaut", "chelsea")
GOLDEN_STYLES: tuple[str, ...] = ("immunohistochemistry", "colorwheel")
"""scikit-image's bundled images (`gouache.nst.eval_grid.skimage_grid`): nothing to mount."""

GOLDEN_SIDE = 128
"""Long side of every golden image, and the side the meter measures at: seconds on CPU."""

GOLDEN_SEED = 0

_UNDER_TEST = "model under test"
"""What the measured version is called inside the evaluation: never a reference's name."""


@dataclass(frozen=True)
class Evaluation:
    """Medians over the golden pairs of a version and of the histogram baseline."""

    model_version: str
    style_distance: float
    content_distance: float
    baseline_style_distance: float
    baseline_content_distance: float
    pairs: int
    compute_ms: int
    golden_set: str


class GoldenSet:
    """The golden pairs and the quality meter, built on first use, once per instance.

    The server holds one for the process, so the meter's Lite0 encoder is loaded once,
    when the first evaluation needs it. `measure` blocks (stylizes and encodes): call it
    in a worker thread. Thread-safe.
    """

    def __init__(
        self,
        *,
        contents: Sequence[str] = GOLDEN_CONTENTS,
        styles: Sequence[str] = GOLDEN_STYLES,
        side: int = GOLDEN_SIDE,
        seed: int = GOLDEN_SEED,
    ) -> None:
        self._contents = tuple(contents)
        self._styles = tuple(styles)
        self._side = side
        self._seed = seed
        self._lock = threading.Lock()
        self._grid: EvalGrid | None = None
        self._meter: QualityMeter | None = None

    @property
    def description(self) -> str:
        """Which images, at which side and seed: results compare only under the same one."""
        return (
            f"scikit-image {_skimage_version()} sample images: contents "
            f"{', '.join(self._contents)} x styles {', '.join(self._styles)}; long side "
            f"{self._side} px, measured at {self._side} px on Lite0 "
            f"(gouache.nst.quality), seed {self._seed}"
        )

    def measure(self, model_version: str, family: StyleFamily) -> Evaluation:
        """Stylizes every golden pair with `family` and measures it beside the baseline.

        Raises FailedPrecondition when the family refuses the golden styles (a model
        that paints only its trained styles).
        """
        from gouache.nst.eval_report import ModelUnderTest
        from gouache.nst.evaluate import evaluate
        from gouache.nst.quality import BASELINE_NAME

        grid, meter = self._prepared()
        started = time.perf_counter()
        report = evaluate(
            grid,
            [ModelUnderTest(_UNDER_TEST, family.name, "served", lambda: family)],
            meter=meter,
            controls=StylizeControls(seed=self._seed),
        )
        if _UNDER_TEST in report.skipped:
            raise FailedPrecondition(
                f"model version {model_version} cannot be measured on the golden set: "
                f"{report.skipped[_UNDER_TEST]}",
                reason="golden_set_refused",
            )
        model = report.results[_UNDER_TEST]
        baseline = report.results[BASELINE_NAME]
        return Evaluation(
            model_version=model_version,
            style_distance=_median([r.style_distance for r in model]),
            content_distance=_median([r.content_distance for r in model]),
            baseline_style_distance=_median([r.style_distance for r in baseline]),
            baseline_content_distance=_median([r.content_distance for r in baseline]),
            pairs=len(model),
            compute_ms=round((time.perf_counter() - started) * 1000),
            golden_set=self.description,
        )

    def _prepared(self) -> tuple[EvalGrid, QualityMeter]:
        with self._lock:
            if self._grid is None or self._meter is None:
                from gouache.nst.eval_grid import skimage_grid
                from gouache.nst.quality import QualityMeter

                self._grid = skimage_grid(
                    side=self._side, contents=self._contents, styles=self._styles
                )
                self._meter = QualityMeter(side=self._side)
            return self._grid, self._meter


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def _skimage_version() -> str:
    try:
        return metadata.version("scikit-image")
    except metadata.PackageNotFoundError:
        return "(not installed)"
