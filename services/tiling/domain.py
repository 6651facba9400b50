"""Running one job: load inputs, plan tiles, stylize in batches, blend, store, report.

Colour controls: luminance_only is per pixel, so inference applies it to each tile;
histogram_match needs the whole content's colours, so it is applied here, to the
styles, before tiling (see _match_to_content).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from enum import Enum
from typing import Protocol, TypeVar

import numpy as np
from numpy.typing import NDArray

from gouache.imaging import codec, color
from gouache.imaging.errors import ImageRejected
from gouache.imaging.tiling import MIN_TILE_SIZE, Tile, blend_tiles, extract_tile, plan_tiles
from gouache.lru import LruCache
from gouache.runtime.errors import (
    AlreadyExists,
    FailedPrecondition,
    GouacheError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
)

logger = logging.getLogger(__name__)

Pixels = NDArray[np.uint8]
T = TypeVar("T")

MAX_TILE_SIZE = 2048
MAX_PLAN_SIDE = 8192
OUTPUT_FORMATS = ("png", "jpeg", "webp")
DEFAULT_QUALITY = 90
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_ID_BODY = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")

# Fractions reported at each stage; stylizing fills the range between them.
_STYLIZE_START = 0.05
_STYLIZE_END = 0.9
_STORING = 0.95

# Errors that the same input will always hit again: report them, never retry.
_PERMANENT: tuple[type[GouacheError], ...] = (
    InvalidArgument,
    FailedPrecondition,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
)


@dataclass(frozen=True)
class JobParams:
    """The job's stylization parameters; None means "the default" for optional ones."""

    alpha: float | None = None
    tv_weight: float | None = None
    luminance_only: bool = False
    histogram_match: bool = False
    tile_size: int | None = None
    overlap: int | None = None
    seed: int | None = None
    weights: tuple[float, ...] = ()
    prompt: str | None = None
    output_format: str = ""
    quality: int | None = None
    # Longest side of the output: a larger content is shrunk to it before stylizing.
    max_side: int | None = None


@dataclass(frozen=True)
class Job:
    """A created job as the worker sees it."""

    job_id: str
    owner_id: str
    content_image_id: str
    style_image_ids: tuple[str, ...]
    model_version: str
    params: JobParams = field(default_factory=JobParams)
    # host:port of the inference server of model_version; "" for the worker's default.
    inference_endpoint: str = ""


@dataclass(frozen=True)
class StyleInput:
    """A style image as sent to inference, under a key stable for its bytes and size."""

    key: str
    pixels: Pixels


@dataclass(frozen=True)
class StoredImage:
    """What storage answered for an uploaded image."""

    image_id: str
    width: int
    height: int


class Storage(Protocol):
    """The storage operations a worker needs, acting as a service for the job's owner."""

    async def download(self, image_id: str) -> bytes:
        """Returns an image's encoded bytes."""
        ...

    async def upload(
        self,
        *,
        image_id: str,
        owner_id: str,
        filename: str,
        content_type: str,
        data: bytes,
        metadata_json: str,
    ) -> StoredImage:
        """Stores a result under image_id; the same id and bytes again return the first."""
        ...


class Inference(Protocol):
    """The inference call a worker needs."""

    async def stylize_batch(
        self,
        model_version: str,
        tiles: Sequence[Pixels],
        styles: Sequence[StyleInput],
        params: JobParams,
        *,
        endpoint: str = "",
    ) -> list[Pixels]:
        """Stylizes tiles of one image with the same styles; outputs in input order.

        endpoint is the inference server of the version ("" for the default one).
        """
        ...


# An answer about a model version as served at an endpoint ("" for the default inference).
ModelQuery = Callable[[str, str], Awaitable[T]]


class ExecutionEvents(Protocol):
    """Where a worker reports a job's progress and outcome (JetStream in production)."""

    async def progress(
        self, job_id: str, *, event_id: str, fraction: float, stage: str, started_at: datetime
    ) -> None:
        """Reports how far the job got."""
        ...

    async def succeeded(
        self, job_id: str, *, event_id: str, result_image_id: str, compute_ms: int, tiles: int
    ) -> None:
        """Reports the stored result."""
        ...

    async def failed(
        self, job_id: str, *, event_id: str, error_code: str, error_message: str
    ) -> None:
        """Reports that the worker gave up on the job."""
        ...


class Outcome(Enum):
    """How one delivery of a job ended, when it did not ask to be retried."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class RetryLater(Exception):
    """The job failed for a reason that may pass (a service down, a deadline): redeliver it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Failure:
    """An error classified: its status code name, a message for the job's owner, retry or not."""

    code: str
    message: str
    permanent: bool


class CanceledJobs:
    """The ids of recently canceled jobs, the oldest forgotten first beyond `capacity`.

    A running job can `watch` for its cancellation, to stop its inference call the moment
    the JobCanceled event arrives instead of at its next check.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._watchers: dict[str, list[Callable[[], object]]] = {}

    def add(self, job_id: str) -> None:
        """Remembers that a job was canceled and tells whoever watches it."""
        self._ids[job_id] = None
        self._ids.move_to_end(job_id)
        while len(self._ids) > self._capacity:
            self._ids.popitem(last=False)
        for on_cancel in self._watchers.pop(job_id, []):
            on_cancel()

    @contextmanager
    def watch(self, job_id: str, on_cancel: Callable[[], object]) -> Iterator[None]:
        """Calls `on_cancel` once if the job is canceled while the block runs (or was)."""
        if job_id in self._ids:
            on_cancel()
            yield
            return
        watchers = self._watchers.setdefault(job_id, [])
        watchers.append(on_cancel)
        try:
            yield
        finally:
            if on_cancel in watchers:
                watchers.remove(on_cancel)
            if not watchers and self._watchers.get(job_id) is watchers:
                del self._watchers[job_id]

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)


@dataclass
class WorkerStatus:
    """What this worker is doing and has done since it started."""

    running_job_ids: list[str] = field(default_factory=list)
    jobs_succeeded: int = 0
    jobs_failed: int = 0
    redeliveries: int = 0


@dataclass(frozen=True)
class TilePlan:
    """The tiles of one image and the tile size and overlap they were planned with."""

    tiles: list[Tile]
    tile_size: int
    overlap: int


def plan_image(
    width: int, height: int, tile_size: int, overlap: int, *, field_prefix: str = "params."
) -> TilePlan:
    """Checks a tile size and overlap against the mesh limits and plans the tiles.

    The mesh accepts an overlap up to half the tile size; the planner needs strictly
    less, so exactly half becomes the largest overlap it takes. `field_prefix` is where
    tile_size and overlap sit in the caller's request, for error messages.
    """
    if width < 1 or height < 1:
        raise InvalidArgument(f"image size must be positive, got {width}x{height}", field="width")
    if width > MAX_PLAN_SIDE or height > MAX_PLAN_SIDE:
        raise InvalidArgument(
            f"images are at most {MAX_PLAN_SIDE} pixels on a side, got {width}x{height}",
            field="width",
        )
    if not MIN_TILE_SIZE <= tile_size <= MAX_TILE_SIZE:
        raise InvalidArgument(
            f"tile_size must be between {MIN_TILE_SIZE} and {MAX_TILE_SIZE} pixels "
            f"(or 0 for the model's default), got {tile_size}",
            field=f"{field_prefix}tile_size",
        )
    if not 0 <= overlap <= tile_size // 2:
        raise InvalidArgument(
            f"overlap must be between 0 and half the tile size ({tile_size // 2}), got {overlap}",
            field=f"{field_prefix}overlap",
        )
    overlap = min(overlap, (tile_size - 1) // 2)
    return TilePlan(plan_tiles(width, height, tile_size, overlap), tile_size, overlap)


def result_image_id(job_id: str) -> str:
    """The result's image id, derived from the job id so every attempt stores the same image.

    A job id made by new_id ("job_" and 26 base32 characters) keeps its body, so the
    result id sorts and dates like its job; any other job id is hashed into that form.
    """
    body = job_id.removeprefix("job_")
    if not _ID_BODY.fullmatch(body):
        value = int.from_bytes(hashlib.sha256(job_id.encode()).digest()[:16], "big")
        body = "".join(_CROCKFORD[(value >> (5 * i)) & 0x1F] for i in reversed(range(26)))
    return "img_" + body


def classify(exc: BaseException) -> Failure:
    """Sorts an error into permanent (report and stop) or transient (retry)."""
    if isinstance(exc, ImageRejected):
        return Failure("INVALID_ARGUMENT", exc.message, permanent=True)
    if isinstance(exc, _PERMANENT):
        return Failure(exc.code.name, exc.message, permanent=True)
    if isinstance(exc, GouacheError):
        return Failure(exc.code.name, exc.message, permanent=False)
    if isinstance(exc, TimeoutError):
        return Failure("DEADLINE_EXCEEDED", "a call from the worker timed out", permanent=False)
    if isinstance(exc, OSError):
        return Failure("UNAVAILABLE", f"a service was unreachable: {exc}", permanent=False)
    return Failure(
        "INTERNAL", "the worker hit an internal error; it has been logged", permanent=False
    )


class _Canceled(Exception):
    """The job was canceled while it ran."""


class JobRunner:
    """Executes created jobs; every attempt of a job stores and reports the same result."""

    def __init__(
        self,
        storage: Storage,
        inference: Inference,
        events: ExecutionEvents,
        *,
        canceled: CanceledJobs,
        tile_size_for: ModelQuery[int],
        trained_styles_only: ModelQuery[bool] | None = None,
        default_overlap: int = 32,
        batch_size: int = 4,
        max_batch_bytes: int = 48 * 1024 * 1024,
        max_deliver: int = 5,
        progress_interval_s: float = 0.0,
        style_cache_entries: int = 32,
        status: WorkerStatus | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._storage = storage
        self._inference = inference
        self._events = events
        self._canceled = canceled
        self._tile_size_for = tile_size_for
        self._trained_styles_only = trained_styles_only or _any_style
        self._default_overlap = default_overlap
        self._batch_size = batch_size
        self._max_batch_bytes = max_batch_bytes
        self._max_deliver = max_deliver
        self._progress_interval_s = progress_interval_s
        self._styles: LruCache[tuple[str, int], StyleInput] = LruCache(style_cache_entries)
        self._clock = clock
        self._monotonic = monotonic
        self.status = status if status is not None else WorkerStatus()

    async def run(self, job: Job, *, delivery: int = 1) -> Outcome:
        """Runs one delivery of a job.

        Returns how it ended when the message should be acked; raises RetryLater when it
        should be redelivered (transient failures before the last delivery).
        """
        if delivery > 1:
            self.status.redeliveries += 1
        if job.job_id in self._canceled:
            logger.info("job canceled before it started; skipping it")
            return Outcome.CANCELED
        self.status.running_job_ids.append(job.job_id)
        try:
            return await self._attempt(job, delivery)
        finally:
            self.status.running_job_ids.remove(job.job_id)

    async def _attempt(self, job: Job, delivery: int) -> Outcome:
        try:
            result_id, compute_ms, tiles = await self._execute(job, delivery)
            await self._events.succeeded(
                job.job_id,
                event_id=f"exec-succeeded-{job.job_id}",
                result_image_id=result_id,
                compute_ms=compute_ms,
                tiles=tiles,
            )
        except _Canceled:
            logger.info("job canceled while running; dropping it")
            return Outcome.CANCELED
        except Exception as exc:
            failure = classify(exc)
            last = delivery >= self._max_deliver
            if not failure.permanent and not last:
                logger.warning(
                    "job attempt failed; it will be retried",
                    extra={"delivery": delivery, "code": failure.code, "error": str(exc)},
                    exc_info=failure.code == "INTERNAL",
                )
                raise RetryLater(failure.code, failure.message) from exc
            logger.warning(
                "job failed",
                extra={"delivery": delivery, "code": failure.code, "error": str(exc)},
                exc_info=failure.code == "INTERNAL",
            )
            message = failure.message
            if not failure.permanent:
                message = f"gave up after {delivery} attempts: {message}"
            await self._events.failed(
                job.job_id,
                event_id=f"exec-failed-{job.job_id}",
                error_code=failure.code,
                error_message=message,
            )
            self.status.jobs_failed += 1
            return Outcome.FAILED
        self.status.jobs_succeeded += 1
        return Outcome.SUCCEEDED

    async def _execute(self, job: Job, delivery: int) -> tuple[str, int, int]:
        """Does the work; returns (result image id, compute ms, tile count)."""
        started_at = self._clock()
        started = time.perf_counter()
        timings: dict[str, int] = {}
        reporter = _Progress(
            self._events,
            job.job_id,
            delivery,
            started_at,
            self._progress_interval_s,
            self._monotonic,
        )
        await reporter.report(0.0, "loading")
        _require_inputs(job)

        mark = time.perf_counter()
        content = await self._load(job.content_image_id, "content")
        if job.params.max_side is not None:
            content = await asyncio.to_thread(_fit, content, job.params.max_side)
        tile_size = job.params.tile_size or await self._tile_size_for(
            job.model_version, job.inference_endpoint
        )
        styles = [
            await self._style(image_id, f"style {index + 1}", tile_size)
            for index, image_id in enumerate(job.style_image_ids)
        ]
        timings["load_ms"] = _ms_since(mark)

        overlap = self._default_overlap if job.params.overlap is None else job.params.overlap
        if job.params.overlap is None:
            overlap = min(overlap, tile_size // 2)
        plan = plan_image(content.width, content.height, tile_size, overlap)
        params = job.params
        match_output = False
        if params.histogram_match:
            # A model that paints only its trained styles ignores a recoloured style, so
            # its output is matched to the content's colours after blending instead.
            if await self._trained_styles_only(job.model_version, job.inference_endpoint):
                match_output = True
            else:
                styles = await asyncio.to_thread(_match_to_content, styles, content)
            params = replace(params, histogram_match=False)
        fmt, quality = _output_encoding(job.params)
        logger.info(
            "job started",
            extra={
                "delivery": delivery,
                "model_version": job.model_version,
                "inference_endpoint": job.inference_endpoint or "default",
                "width": content.width,
                "height": content.height,
                "tiles": len(plan.tiles),
                "tile_size": plan.tile_size,
                "overlap": plan.overlap,
            },
        )

        mark = time.perf_counter()
        outputs = await self._stylize(job, params, content.pixels, plan, styles, reporter)
        timings["stylize_ms"] = _ms_since(mark)

        mark = time.perf_counter()
        await reporter.report(_STYLIZE_END, "encoding")
        data = await asyncio.to_thread(
            _blend_and_encode,
            plan,
            outputs,
            content.width,
            content.height,
            fmt,
            quality,
            content.pixels if match_output else None,
        )
        timings["encode_ms"] = _ms_since(mark)

        if job.job_id in self._canceled:
            raise _Canceled
        await reporter.report(_STORING, "storing")
        mark = time.perf_counter()
        result_id = result_image_id(job.job_id)
        metadata = {
            "job_id": job.job_id,
            "model_version": job.model_version,
            "content_image_id": job.content_image_id,
            "style_image_ids": list(job.style_image_ids),
            "params": _params_record(job.params),
            "tiles": len(plan.tiles),
            "tile_size": plan.tile_size,
            "overlap": plan.overlap,
            "output_format": fmt,
            "delivery": delivery,
            "timings_ms": timings,
        }
        try:
            await self._storage.upload(
                image_id=result_id,
                owner_id=job.owner_id,
                filename=f"{job.job_id}.{'jpg' if fmt == 'jpeg' else fmt}",
                content_type=codec.content_type_for(fmt),
                data=data,
                metadata_json=json.dumps(metadata, sort_keys=True),
            )
        except AlreadyExists:
            # An earlier attempt stored a result under this id; it is the job's result.
            logger.warning("result already stored by an earlier attempt; keeping it")
        timings["store_ms"] = _ms_since(mark)
        compute_ms = _ms_since(started)
        logger.info(
            "job finished",
            extra={"result_image_id": result_id, "compute_ms": compute_ms, **timings},
        )
        return result_id, compute_ms, len(plan.tiles)

    async def _style(self, image_id: str, role: str, tile_size: int) -> StyleInput:
        """A style image at the tile size, from the cache when an earlier job used it.

        Stored images never change, and jobs checked the owner's access when the job was
        created, so a style decoded for one job serves the next (catalogue styles are
        shared by every user): no download, decode and resize per job.
        """
        cached = self._styles.get((image_id, tile_size))
        if cached is not None:
            return cached
        image = await self._load(image_id, role)
        style = StyleInput(
            key=f"{image.sha256}@{tile_size}",
            pixels=await asyncio.to_thread(codec.resize_to_fit, image.pixels, tile_size),
        )
        self._styles.put((image_id, tile_size), style)
        return style

    async def _load(self, image_id: str, role: str) -> codec.DecodedImage:
        data = await self._storage.download(image_id)
        try:
            return await asyncio.to_thread(codec.validate_and_decode, data)
        except ImageRejected as exc:
            raise InvalidArgument(
                f"the {role} image {image_id} cannot be used: {exc.message}",
                reason=exc.reason,
            ) from exc

    async def _stylize(
        self,
        job: Job,
        params: JobParams,
        content: Pixels,
        plan: TilePlan,
        styles: Sequence[StyleInput],
        reporter: _Progress,
    ) -> list[Pixels]:
        outputs: list[Pixels] = []
        total = len(plan.tiles)
        per_batch = self._tiles_per_batch(plan, styles)
        for start in range(0, total, per_batch):
            if job.job_id in self._canceled:
                raise _Canceled
            batch = plan.tiles[start : start + per_batch]
            crops = [np.ascontiguousarray(extract_tile(content, tile)) for tile in batch]
            results = await self._stylize_batch(job, crops, styles, params)
            for tile, result in zip(batch, results, strict=True):
                if result.shape != (tile.height, tile.width, 3):
                    raise FailedPrecondition(
                        f"inference returned a {result.shape} tile for a "
                        f"{tile.height}x{tile.width} input; the model version must keep sizes"
                    )
            outputs.extend(results)
            fraction = _STYLIZE_START + (_STYLIZE_END - _STYLIZE_START) * len(outputs) / total
            await reporter.report(fraction, "stylizing")
        return outputs

    async def _stylize_batch(
        self, job: Job, crops: Sequence[Pixels], styles: Sequence[StyleInput], params: JobParams
    ) -> list[Pixels]:
        """One inference call, cancelled the moment the job is, not at the next batch.

        Cancelling the call cancels the gRPC call, so inference stops computing it within
        an optimisation step instead of running on for every step it was asked for.
        """
        call = asyncio.ensure_future(
            self._inference.stylize_batch(
                job.model_version, crops, styles, params, endpoint=job.inference_endpoint
            )
        )
        with self._canceled.watch(job.job_id, call.cancel):
            try:
                return await call
            except asyncio.CancelledError:
                current = asyncio.current_task()
                stopping = current is not None and current.cancelling() > 0
                if call.cancelled() and not stopping and job.job_id in self._canceled:
                    logger.info("job canceled during an inference call; the call was cancelled")
                    raise _Canceled from None
                raise

    def _tiles_per_batch(self, plan: TilePlan, styles: Sequence[StyleInput]) -> int:
        """batch_size tiles, fewer when their pixels and the styles' would pass max_batch_bytes."""
        tile = plan.tiles[0]
        tile_bytes = tile.width * tile.height * 3
        budget = self._max_batch_bytes - sum(style.pixels.nbytes for style in styles)
        return max(1, min(self._batch_size, budget // tile_bytes))


class _Progress:
    """Publishes a job's progress; best effort, since the outcome event is what counts.

    The first report (which moves the job to running) is always sent; later ones only
    when `interval_s` has passed since the last one sent. Each progress event is a
    JetStream publish and a transaction in jobs, and a 512 px job that takes 0.3 s
    reported five of them: under load they were a large part of jobs' work
    (loadtests/RESULTS.md). Long jobs still report at least every interval.
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
        self._last_sent: float | None = None

    async def report(self, fraction: float, stage: str) -> None:
        now = self._monotonic()
        if self._last_sent is not None and now - self._last_sent < self._interval_s:
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


def _match_to_content(
    styles: Sequence[StyleInput], content: codec.DecodedImage
) -> list[StyleInput]:
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


def _fit(image: codec.DecodedImage, max_side: int) -> codec.DecodedImage:
    """The content shrunk so its longest side is at most max_side (params.max_side)."""
    if max(image.width, image.height) <= max_side:
        return image
    pixels = codec.resize_to_fit(image.pixels, max_side)
    return replace(image, pixels=pixels, width=pixels.shape[1], height=pixels.shape[0])


def _blend_and_encode(
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
    blended = blend_tiles(list(plan.tiles), list(outputs), width, height, plan.overlap)
    pixels = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    if match_to is not None:
        pixels = color.to_uint8(
            color.match_histogram(color.to_float32(pixels), color.to_float32(match_to))
        )
    return codec.encode(pixels, fmt, quality=quality)


async def _any_style(_model_version: str, _endpoint: str) -> bool:
    return False


def _require_inputs(job: Job) -> None:
    if not job.content_image_id:
        raise InvalidArgument("the job names no content image", field="content_image_id")
    if not 1 <= len(job.style_image_ids) <= 4:
        raise InvalidArgument(
            f"a job needs 1 to 4 style images, this one has {len(job.style_image_ids)}",
            field="style_image_ids",
        )
    if not job.model_version:
        raise InvalidArgument("the job names no model version", field="model_version")


def _output_encoding(params: JobParams) -> tuple[str, int]:
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


def _params_record(params: JobParams) -> dict[str, object]:
    record = asdict(params)
    record["weights"] = list(params.weights)
    return {key: value for key, value in record.items() if value is not None}


def _ms_since(mark: float) -> int:
    return round((time.perf_counter() - mark) * 1000)
