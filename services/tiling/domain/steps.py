"""The steps of a job that are plain functions: resize, recolour, blend and encode, progress."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from datetime import datetime

import numpy as np

from gouache.imaging import codec, color
from gouache.imaging.tiling import blend_tiles
from gouache.runtime.errors import (
    InvalidArgument,
)
from services.tiling.domain.model import (
    DEFAULT_QUALITY,
    OUTPUT_FORMATS,
    ExecutionEvents,
    Job,
    JobParams,
    Pixels,
    StyleInput,
)
from services.tiling.domain.plan import (
    TilePlan,
)

logger = logging.getLogger(__name__)


class Progress:
    """Publishes a job's progress; best effort, since the outcome event is what counts.

    A report is sent only when `interval_s` has passed since the job started or since the
    last one sent. Each progress event is a JetStream publish and a transaction in jobs,
    and a 512 px job that takes 0.2 s reported five of them: under load they were a
    large part of jobs' work (loadtests/RESULTS.md). So a job done within the interval
    sends none and goes from pending straight to its outcome, which is all a client
    could have seen of it; a longer job reports (and turns running) once the interval
    has passed, then at most once per interval. An interval of 0 sends every report.
    """

    def __init__(
        self,
        events: ExecutionEvents,
        job_id: str,
        delivery: int,
        started_at: datetime,
        interval_s: float = 0.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._events = events
        self._job_id = job_id
        self._delivery = delivery
        self._started_at = started_at
        self._interval_s = interval_s
        self._monotonic = monotonic
        self._sequence = 0
        self._last_sent = monotonic()

    async def report(self, fraction: float, stage: str) -> None:
        now = self._monotonic()
        if self._interval_s > 0 and now - self._last_sent < self._interval_s:
            return
        self._last_sent = now
        self._sequence += 1
        event_id = f"exec-progress-{self._job_id}-{self._delivery}-{self._sequence}"
        try:
            await self._events.progress(
                self._job_id,
                event_id=event_id,
                fraction=round(fraction, 4),
                stage=stage,
                started_at=self._started_at,
            )
        except Exception as exc:
            logger.warning("could not publish progress", extra={"stage": stage, "error": str(exc)})


def match_to_content(styles: Sequence[StyleInput], content: codec.DecodedImage) -> list[StyleInput]:
    """Recolours each style to the whole content's colour histogram (histogram_match).

    Done here, once per job, rather than by inference per tile: matching each tile's own
    colours would give every tile a differently recoloured style (visible as colour
    steps between tiles) and a new style key per tile (no reuse of style statistics).
    """
    reference = color.to_float32(content.pixels)
    return [
        StyleInput(
            key=f"{style.key}:hm-{content.sha256[:16]}",
            pixels=color.to_uint8(color.match_histogram(color.to_float32(style.pixels), reference)),
        )
        for style in styles
    ]


def fit_to_side(image: codec.DecodedImage, max_side: int) -> codec.DecodedImage:
    """The content shrunk so its longest side is at most max_side (params.max_side)."""
    if max(image.width, image.height) <= max_side:
        return image
    pixels = codec.resize_to_fit(image.pixels, max_side)
    return replace(image, pixels=pixels, width=pixels.shape[1], height=pixels.shape[0])


def blend_and_encode(
    plan: TilePlan,
    outputs: list[Pixels],
    width: int,
    height: int,
    fmt: str,
    quality: int,
    match_to: Pixels | None = None,
) -> bytes:
    """Blends the stylized tiles into one image and encodes it (CPU work, run in a thread).

    With `match_to`, the blended image is recoloured to that image's colour histogram
    (histogram_match for models that paint only their trained styles).
    """
    pixels = _whole_image(plan, outputs, width, height)
    if pixels is None:
        blended = blend_tiles(list(plan.tiles), list(outputs), width, height, plan.overlap)
        pixels = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    if match_to is not None:
        pixels = color.to_uint8(
            color.match_histogram(color.to_float32(pixels), color.to_float32(match_to))
        )
    return codec.encode(pixels, fmt, quality=quality)


def _whole_image(plan: TilePlan, outputs: list[Pixels], width: int, height: int) -> Pixels | None:
    """The output itself when one uint8 tile covers the whole image, else None.

    Blending one tile is a weighted average with a single term: the same pixels, after
    two float32 buffers of the image's size and a division (about a tenth of tiling's
    CPU per 512 px job under load). Most jobs are one tile, so they skip it.
    """
    if len(plan.tiles) != 1 or len(outputs) != 1:
        return None
    tile, output = plan.tiles[0], outputs[0]
    whole = tile.x == 0 and tile.y == 0 and tile.width == width and tile.height == height
    if not whole or output.dtype != np.uint8 or output.shape != (height, width, 3):
        return None
    return output


async def any_style(_model_version: str, _endpoint: str) -> bool:
    return False


def require_inputs(job: Job) -> None:
    if not job.content_image_id:
        raise InvalidArgument("the job names no content image", field="content_image_id")
    if not 1 <= len(job.style_image_ids) <= 4:
        raise InvalidArgument(
            f"a job needs 1 to 4 style images, this one has {len(job.style_image_ids)}",
            field="style_image_ids",
        )
    if not job.model_version:
        raise InvalidArgument("the job names no model version", field="model_version")


def output_encoding(params: JobParams) -> tuple[str, int]:
    fmt = (params.output_format or "png").lower()
    if fmt == "jpg":
        fmt = "jpeg"
    if fmt not in OUTPUT_FORMATS:
        raise InvalidArgument(
            f"output_format must be one of {', '.join(OUTPUT_FORMATS)}, got {params.output_format!r}",
            field="params.output_format",
        )
    quality = DEFAULT_QUALITY if params.quality is None else params.quality
    if not 1 <= quality <= 100:
        raise InvalidArgument(
            f"quality must be between 1 and 100, got {quality}", field="params.quality"
        )
    return fmt, quality


def params_record(params: JobParams) -> dict[str, object]:
    record = asdict(params)
    record["weights"] = list(params.weights)
    return {key: value for key, value in record.items() if value is not None}


def ms_since(mark: float) -> int:
    return round((time.perf_counter() - mark) * 1000)
