"""ModelHost: the loaded model versions, and each stylization validated, queued and computed."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from gouache.imaging.codec import from_rgb_bytes
from gouache.imaging.errors import ImageRejected
from gouache.nst.base import (
    Cancellation,
    RGBImage,
    StyleFamily,
    StylizeControls,
    trained_style_keys,
)
from gouache.nst.batching import StylizeItem, batches, stylize_batch
from gouache.runtime.errors import (
    FailedPrecondition,
    Internal,
    InvalidArgument,
    ResourceExhausted,
    Unavailable,
)
from services.inference.batching import BatchKey, MicroBatcher, Stylized
from services.inference.domain.requests import (
    MAX_BATCH_TILES,
    MAX_STYLES,
    MIN_STYLES,
    FamilyBuilder,
    Fault,
    LoadedModel,
    RawImage,
    StylizeResult,
    StylizeTask,
    style_weights,
    warmup_images,
)
from services.inference.golden import Evaluation, GoldenSet

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


@dataclass(frozen=True)
class _Prepared:
    images: list[RGBImage]
    styles: list[RGBImage]
    style_keys: list[str]
    weights: tuple[float, ...]
    controls: StylizeControls


class ModelHost:
    """Loads model versions, warms them up, and runs stylizations one semaphore slot each.

    Torch work runs in a worker thread so the event loop keeps answering health checks
    and queued calls while a stylization (or an evaluation) computes.
    """

    def __init__(
        self,
        versions: Sequence[str] | Mapping[str, str],
        *,
        device: str,
        builder: FamilyBuilder,
        max_concurrency: int = 1,
        max_pixels: int = 2048 * 2048,
        warmup_side: int = 32,
        tile_size_of: Callable[[str], int] | None = None,
        faults: Mapping[str, Fault] | None = None,
        rng: random.Random | None = None,
        golden: GoldenSet | None = None,
        max_batch_size: int = 1,
        max_queue_delay_ms: float = 0.0,
    ) -> None:
        """Holds `versions`: each served name with the registry model it runs.

        A plain sequence serves every model under its own name. `builder` and
        `tile_size_of` take the model. `faults` (tests only) slow down or fail the calls
        for some names, drawing from `rng`; `golden` is the set `evaluate` measures on.
        Images for families that batch (adain, feedforward, wct) go through a `MicroBatcher`:
        up to `max_batch_size` of one version and size per forward pass, waiting at most
        `max_queue_delay_ms` for a batch to fill (services.inference.batching).
        """
        if not versions:
            raise ValueError("the inference service needs at least one model version to load")
        self._served = dict(versions) if isinstance(versions, Mapping) else {v: v for v in versions}
        self._versions = list(self._served)
        self._device = device
        self._builder = builder
        self._slots = asyncio.Semaphore(max_concurrency)
        self._batcher = MicroBatcher(
            self._compute_batch,
            slots=self._slots,
            max_batch_size=max_batch_size,
            max_queue_delay_s=max_queue_delay_ms / 1000,
            max_batch_pixels=max_pixels,
        )
        self._waiting = 0
        self._max_pixels = max_pixels
        self._warmup_side = warmup_side
        self._models: dict[str, LoadedModel] = {}
        self._tile_size_of = tile_size_of or (lambda _model: 0)
        self._faults = dict(faults or {})
        unknown = sorted(set(self._faults) - set(self._served))
        if unknown:
            raise ValueError(
                f"faults name version(s) {', '.join(unknown)} that are not served; "
                f"served: {', '.join(self._versions)}"
            )
        if self._faults:
            logger.warning(
                "GOUACHE_INFERENCE_FAULTS is set, for tests only: calls for these versions "
                "are slowed down and failed on purpose: %s",
                "; ".join(
                    f"{name} (error_rate {f.error_rate}, delay_ms {f.delay_ms})"
                    for name, f in self._faults.items()
                ),
                extra={
                    "faults": {
                        name: {"error_rate": f.error_rate, "delay_ms": f.delay_ms}
                        for name, f in self._faults.items()
                    }
                },
            )
        self._rng = rng or random.Random()
        self._golden = golden or GoldenSet()
        self._evaluations: dict[str, Evaluation] = {}
        self._evaluating = asyncio.Lock()

    @property
    def device(self) -> str:
        """The device every model version runs on."""
        return self._device

    def models(self) -> list[LoadedModel]:
        """The configured versions in configuration order, loaded or still loading."""
        return [self._models[v] for v in self._versions if v in self._models]

    async def load_all(self) -> None:
        """Builds every configured version and warms each up; raises if any cannot load."""
        for version, served_model in self._served.items():
            started = time.perf_counter()
            instance = await asyncio.to_thread(self._builder, served_model, self._device)
            model = LoadedModel(
                version=version,
                model=served_model,
                family=instance.name,
                device=self._device,
                tile_size=self._tile_size_of(served_model),
                trained_styles_only=bool(trained_style_keys(instance)),
                instance=instance,
            )
            self._models[version] = model
            await self._warm_up(model, instance)
            model.ready = True
            logger.info(
                "model version ready",
                extra={
                    "model_version": version,
                    "model": served_model,
                    "family": instance.name,
                    "device": self._device,
                    "load_ms": round((time.perf_counter() - started) * 1000),
                },
            )

    async def _warm_up(self, model: LoadedModel, instance: StyleFamily) -> None:
        content, style = warmup_images(self._warmup_side)
        _, seconds = await self._compute(
            instance,
            content,
            [style],
            (1.0,),
            StylizeControls(),
            style_keys=trained_style_keys(instance)[:1] or None,
        )
        logger.info(
            "warm-up stylization done",
            extra={"model_version": model.version, "warmup_ms": round(seconds * 1000)},
        )

    async def stylize(self, task: StylizeTask) -> StylizeResult:
        """Validates a task, then stylizes its images in order with the same styles.

        When the caller goes away (its gRPC call cancelled or past its deadline: the task
        awaiting this is cancelled), the call's `Cancellation` fires: the worker thread
        stops at the family's next check (one optimisation step for gatys), and work
        still queued for a slot or a batch never starts.
        """
        cancellation = Cancellation()
        try:
            return await self._stylize(task, cancellation)
        except asyncio.CancelledError:
            cancellation.cancel()
            raise

    async def _stylize(self, task: StylizeTask, cancellation: Cancellation) -> StylizeResult:
        model = self._model_for(task.model_version)
        await self._inject_fault(model.version)
        prepared = self._prepare(task)
        instance = model.instance
        if instance is None:  # a ready model always has its instance
            raise Unavailable(f"model version {model.version} is not loaded yet; retry shortly")
        if batches(instance):
            return await self._stylize_batched(model.version, prepared, cancellation)
        outputs: list[RGBImage] = []
        compute_s = 0.0
        for image in prepared.images:
            output, seconds = await self._compute(
                instance,
                image,
                prepared.styles,
                prepared.weights,
                prepared.controls,
                style_keys=prepared.style_keys,
                cancellation=cancellation,
                model_version=model.version,
            )
            outputs.append(output)
            compute_s += seconds
        return StylizeResult(
            images=outputs, model_version=model.version, compute_ms=round(compute_s * 1000)
        )

    async def _stylize_batched(
        self, version: str, prepared: _Prepared, cancellation: Cancellation
    ) -> StylizeResult:
        """Queues each image with the batcher, so tiles and other calls share passes.

        compute_ms adds up each image's share of the forward pass it ran in. Every
        image's outcome is collected before the first error is raised, so the tiles of a
        failing call leave no unretrieved exceptions behind.
        """
        outcomes = await asyncio.gather(
            *(
                self._batcher.submit(
                    BatchKey(version, int(image.shape[0]), int(image.shape[1])),
                    StylizeItem(
                        image,
                        prepared.styles,
                        prepared.weights,
                        prepared.controls,
                        prepared.style_keys,
                        cancellation,
                    ),
                )
                for image in prepared.images
            ),
            return_exceptions=True,
        )
        done: list[Stylized] = []
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
            done.append(outcome)
        return StylizeResult(
            images=[item.image for item in done],
            model_version=version,
            compute_ms=round(sum(item.compute_s for item in done) * 1000),
        )

    def _compute_batch(self, key: BatchKey, items: Sequence[StylizeItem]) -> list[RGBImage]:
        """One batch for the batcher, in its worker thread."""
        instance = self._models[key.model_version].instance
        if instance is None:  # only ready versions reach the batcher
            raise Unavailable(f"model version {key.model_version} is not loaded yet")
        return stylize_batch(instance, items)

    async def evaluate(self, version: str) -> Evaluation:
        """Measures a ready version on the golden set, once; later calls answer from memory.

        It runs through the instance that serves traffic, in a worker thread and one
        concurrency slot, so a broken build measures as broken and traffic waits its turn.
        A faulted version fails here as it does for stylizations.
        """
        model = self._model_for(version)
        await self._inject_fault(model.version)
        instance = model.instance
        if instance is None:  # a ready model always has its instance
            raise Unavailable(f"model version {model.version} is not loaded yet; retry shortly")
        if model.trained_styles_only:
            raise FailedPrecondition(
                f"model version {model.version} paints only its "
                f"{len(trained_style_keys(instance))} trained styles and the golden set's "
                "styles are not among them (their images live in the shared corpus, which "
                "this server does not carry); measure it with `gouache eval` instead",
                reason="trained_styles_only",
            )
        async with self._evaluating:
            cached = self._evaluations.get(model.version)
            if cached is None:
                cached = await self._in_slot(partial(self._golden.measure, model.version, instance))
                self._evaluations[model.version] = cached
                logger.info(
                    "model version evaluated",
                    extra={
                        "model_version": model.version,
                        "style_distance": round(cached.style_distance, 4),
                        "content_distance": round(cached.content_distance, 4),
                        "baseline_style_distance": round(cached.baseline_style_distance, 4),
                        "compute_ms": cached.compute_ms,
                    },
                )
        return cached

    async def _inject_fault(self, version: str) -> None:
        fault = self._faults.get(version)
        if fault is None:
            return
        if fault.delay_ms > 0:
            await asyncio.sleep(fault.delay_ms / 1000)
        if self._rng.random() < fault.error_rate:
            raise Internal(
                f"model version {version} failed on purpose: failure injected by "
                f"GOUACHE_INFERENCE_FAULTS (error_rate {fault.error_rate}); a test setting, "
                "unset it to serve normally",
                reason="fault_injected",
            )

    async def _compute(
        self,
        instance: StyleFamily,
        content: RGBImage,
        styles: Sequence[RGBImage],
        weights: Sequence[float],
        controls: StylizeControls,
        *,
        style_keys: Sequence[str] | None,
        cancellation: Cancellation | None = None,
        model_version: str = "",
    ) -> tuple[RGBImage, float]:
        """One stylization in a worker thread, in a concurrency slot; (output, seconds)."""

        def timed() -> tuple[RGBImage, float]:
            started = time.perf_counter()
            output = instance.stylize(
                content, styles, weights, controls, style_keys=style_keys, cancellation=cancellation
            )
            return output, time.perf_counter() - started

        return await self._in_slot(timed, cancellation=cancellation, model_version=model_version)

    async def _in_slot(
        self,
        work: Callable[[], _T],
        *,
        cancellation: Cancellation | None = None,
        model_version: str = "",
    ) -> _T:
        """Runs `work` in a worker thread once a concurrency slot is free.

        A thread cannot be stopped, so when the caller goes away (deadline, cancel) the
        slot stays taken until the thread is done: the next computation never overlaps
        an abandoned one. With a `cancellation`, leaving fires it, so the thread stops at
        the family's next check and frees the slot; a computation still waiting for its
        slot then never starts. One log line says how long the abandoned one took to stop.
        """
        ran = False

        async def in_slot() -> _T:
            nonlocal ran
            self._waiting += 1
            try:
                await self._slots.acquire()
            finally:
                self._waiting -= 1
            try:
                if cancellation is not None:
                    cancellation.check()
                ran = True
                return await asyncio.to_thread(work)
            finally:
                self._slots.release()

        computation = asyncio.ensure_future(in_slot())
        try:
            return await asyncio.shield(computation)
        except asyncio.CancelledError:
            if cancellation is not None:
                cancellation.cancel()
                canceled_at = time.perf_counter()

                def stopped(done: asyncio.Future[_T]) -> None:
                    error = None if done.cancelled() else done.exception()
                    logger.info(
                        "canceled stylization stopped",
                        extra={
                            "model_version": model_version,
                            "started": ran,
                            "stopped_after_ms": round((time.perf_counter() - canceled_at) * 1000),
                            "outcome": "finished" if error is None else type(error).__name__,
                        },
                    )

                computation.add_done_callback(stopped)
            raise

    @property
    def waiting(self) -> int:
        """Computations queued for a concurrency slot (or in the batcher's queues) now."""
        return self._waiting + self._batcher.queued

    def _model_for(self, version: str) -> LoadedModel:
        if not version:
            raise InvalidArgument(
                "model_version is required; pick one of: " + ", ".join(self._versions),
                field="model_version",
            )
        model = self._models.get(version)
        if model is None and version in self._served:
            # Configured, but load_all has not built it yet: the server takes calls (and
            # answers health NOT_SERVING) while it loads, after a restart for instance.
            raise Unavailable(f"model version {version} is still loading; retry shortly")
        if model is None:
            raise FailedPrecondition(
                f"model version {version} is not loaded here; loaded: " + ", ".join(self._versions),
                reason="model_not_loaded",
            )
        if not model.ready:
            raise Unavailable(f"model version {version} is still warming up; retry shortly")
        return model

    def _prepare(self, task: StylizeTask) -> _Prepared:
        if not task.images:
            raise InvalidArgument(
                "send at least one image to stylize", field="tiles" if task.tiled else "content"
            )
        if len(task.images) > MAX_BATCH_TILES:
            raise InvalidArgument(
                f"a batch holds at most {MAX_BATCH_TILES} tiles, got {len(task.images)}; "
                "split it into several calls",
                field="tiles",
            )
        count = len(task.styles)
        if not MIN_STYLES <= count <= MAX_STYLES:
            raise InvalidArgument(
                f"send between {MIN_STYLES} and {MAX_STYLES} style images, got {count}",
                field="styles",
            )
        images = [
            self._pixels(raw, f"tiles[{index}]" if task.tiled else "content")
            for index, raw in enumerate(task.images)
        ]
        styles = [
            self._pixels(style.image, f"styles[{index}].image")
            for index, style in enumerate(task.styles)
        ]
        keys = [
            style.key or hashlib.sha256(style.image.pixels).hexdigest() for style in task.styles
        ]
        params = task.params
        controls = StylizeControls(
            alpha=1.0 if params.alpha is None else params.alpha,
            tv_weight=params.tv_weight,
            luminance_only=params.luminance_only,
            histogram_match=params.histogram_match,
            seed=0 if params.seed is None else params.seed,
        )
        return _Prepared(
            images=images,
            styles=styles,
            style_keys=keys,
            weights=style_weights(params.weights, count),
            controls=controls,
        )

    def _pixels(self, raw: RawImage, field: str) -> RGBImage:
        try:
            pixels = from_rgb_bytes(raw.width, raw.height, raw.pixels)
        except ImageRejected as exc:
            raise InvalidArgument(
                f"{field}: {exc.message}", field=field, reason=exc.reason
            ) from exc
        if raw.width * raw.height > self._max_pixels:
            raise ResourceExhausted(
                f"{field} is {raw.width}x{raw.height} ({raw.width * raw.height} pixels); this "
                f"server takes at most {self._max_pixels} pixels per image: send smaller tiles",
                reason="image_too_large",
            )
        return pixels
