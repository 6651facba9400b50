"""JobRunner: load inputs, plan tiles, stylize in batches, blend, store, report.

Colour controls: luminance_only is per pixel, so inference applies it to each tile;
histogram_match needs the whole content's colours, so it is applied here, to the
styles, before tiling (see match_to_content).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import NamedTuple

import numpy as np

from gouache.imaging import codec
from gouache.imaging.errors import ImageRejected
from gouache.imaging.tiling import extract_tile
from gouache.lru import LruCache
from gouache.results import ResultLink
from gouache.runtime.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
)
from services.tiling.domain.model import (
    CanceledJobs,
    ExecutionEvents,
    Inference,
    Job,
    JobParams,
    ModelQuery,
    Outcome,
    Pixels,
    RetryLater,
    Storage,
    StyleInput,
    WorkerStatus,
)
from services.tiling.domain.plan import (
    TilePlan,
    classify,
    plan_image,
    result_image_id,
)
from services.tiling.domain.steps import (
    Progress,
    any_style,
    blend_and_encode,
    fit_to_side,
    match_to_content,
    ms_since,
    output_encoding,
    params_record,
    require_inputs,
)

logger = logging.getLogger(__name__)

# Fractions reported at each stage; stylizing fills the range between them.
_STYLIZE_START = 0.05
_STYLIZE_END = 0.9
_STORING = 0.95


class _Executed(NamedTuple):
    """A job's stored result: its image id, the worker's time, the tiles, its size, and
    its signed URL when storage gave one."""

    result_image_id: str
    compute_ms: int
    tiles: int
    width: int
    height: int
    link: ResultLink | None


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
        device_for: ModelQuery[str] | None = None,
        default_overlap: int = 32,
        batch_size: int = 4,
        max_batch_bytes: int = 48 * 1024 * 1024,
        max_deliver: int = 5,
        progress_interval_s: float = 0.0,
        style_cache_entries: int = 32,
        result_url_ttl_s: int = 0,
        status: WorkerStatus | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._storage = storage
        self._result_url_ttl_s = result_url_ttl_s
        self._inference = inference
        self._events = events
        self._canceled = canceled
        self._tile_size_for = tile_size_for
        self._trained_styles_only = trained_styles_only or any_style
        self._device_for = device_for
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
            done = await self._execute(job, delivery)
            await self._events.succeeded(
                job.job_id,
                event_id=f"exec-succeeded-{job.job_id}",
                result_image_id=done.result_image_id,
                compute_ms=done.compute_ms,
                tiles=done.tiles,
                output_width=done.width,
                output_height=done.height,
                device=await self._device(job),
                link=done.link,
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

    async def _execute(self, job: Job, delivery: int) -> _Executed:
        """Does the work; returns the stored result and what it took."""
        started_at = self._clock()
        started = time.perf_counter()
        timings: dict[str, int] = {}
        reporter = Progress(
            self._events,
            job.job_id,
            delivery,
            started_at,
            self._progress_interval_s,
            self._monotonic,
        )
        await reporter.report(0.0, "loading")
        require_inputs(job)

        mark = time.perf_counter()
        content = await self._load(job.content_image_id, "content")
        if job.params.max_side is not None:
            content = await asyncio.to_thread(fit_to_side, content, job.params.max_side)
        tile_size = job.params.tile_size or await self._tile_size_for(
            job.model_version, job.inference_endpoint
        )
        styles = [
            await self._style(image_id, f"style {index + 1}", tile_size)
            for index, image_id in enumerate(job.style_image_ids)
        ]
        timings["load_ms"] = ms_since(mark)

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
                styles = await asyncio.to_thread(match_to_content, styles, content)
            params = replace(params, histogram_match=False)
        fmt, quality = output_encoding(job.params)
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
        timings["stylize_ms"] = ms_since(mark)

        mark = time.perf_counter()
        await reporter.report(_STYLIZE_END, "encoding")
        data = await asyncio.to_thread(
            blend_and_encode,
            plan,
            outputs,
            content.width,
            content.height,
            fmt,
            quality,
            content.pixels if match_output else None,
        )
        timings["encode_ms"] = ms_since(mark)

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
            "params": params_record(job.params),
            "tiles": len(plan.tiles),
            "tile_size": plan.tile_size,
            "overlap": plan.overlap,
            "output_format": fmt,
            "delivery": delivery,
            "timings_ms": timings,
        }
        link = None
        try:
            stored = await self._storage.upload(
                image_id=result_id,
                owner_id=job.owner_id,
                filename=f"{job.job_id}.{'jpg' if fmt == 'jpeg' else fmt}",
                content_type=codec.content_type_for(fmt),
                data=data,
                metadata_json=json.dumps(metadata, sort_keys=True),
                link_ttl_s=self._result_url_ttl_s,
            )
            link = stored.link
        except AlreadyExists:
            # An earlier attempt stored a result under this id; it is the job's result.
            logger.warning("result already stored by an earlier attempt; keeping it")
        timings["store_ms"] = ms_since(mark)
        compute_ms = ms_since(started)
        logger.info(
            "job finished",
            extra={"result_image_id": result_id, "compute_ms": compute_ms, **timings},
        )
        return _Executed(
            result_id, compute_ms, len(plan.tiles), content.width, content.height, link
        )

    async def _device(self, job: Job) -> str:
        """The device kind the job's model ran on, for usage ("" when it cannot be told:
        usage must never fail a job that succeeded)."""
        if self._device_for is None:
            return ""
        try:
            return await self._device_for(job.model_version, job.inference_endpoint)
        except Exception:  # a lookup failure only loses the device kind
            logger.warning("could not tell the device of the job's model", exc_info=True)
            return ""

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
        reporter: Progress,
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
