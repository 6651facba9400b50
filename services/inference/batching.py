"""Dynamic micro-batching: requests for one model version and image size share a forward pass.

The scheduler Triton's dynamic batcher uses, for the one-pass families: each image (a
content or a tile) is queued under its `BatchKey`, the model version and its exact
height and width. Padding to a coarser size bucket would change the convolutions'
outputs near the borders, so only images of the same size batch. Per key, a
dispatcher waits until `max_batch_size` items are queued or `max_queue_delay` has
passed since the oldest arrived, then for a free concurrency slot, then takes up to
`max_batch_size` items (more may have arrived while it waited) and runs them in one
`stylize_batch` call in a worker thread. With a delay of 0 nothing waits on purpose:
an idle server runs each request at once, and a busy one batches what queued up while
the slot was taken. Items whose caller went away (deadline, cancel) are dropped
before their batch starts; a batch that fails is run again one item at a time, so an
error (an untrained style, a canceled item) reaches only the request that caused it.

A batch also holds at most `max_batch_pixels` pixels together (at least one image): the
service passes its largest accepted image (GOUACHE_INFERENCE_MAX_PIXELS), so a batch
never needs more activation memory than one such image already does: 16 tiles of
512 x 512 at the default 2048 x 2048, one at 2048 x 2048.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from gouache.nst.base import Canceled, RGBImage
from gouache.nst.batching import StylizeItem
from services.inference.metrics import observe_batch

logger = logging.getLogger(__name__)

BatchCompute = Callable[["BatchKey", Sequence[StylizeItem]], list[RGBImage]]
"""Runs one batch for a key, in a worker thread: the items' outputs, in order."""


@dataclass(frozen=True)
class BatchKey:
    """What must match for two images to share a forward pass."""

    model_version: str
    height: int
    width: int


@dataclass(frozen=True)
class Stylized:
    """One item's output and its share of its batch's compute time."""

    image: RGBImage
    compute_s: float
    batch_size: int


@dataclass
class _Pending:
    item: StylizeItem
    future: asyncio.Future[Stylized]
    queued_at: float

    def abandoned(self) -> bool:
        """The caller went away, or the item's cancellation fired."""
        if self.future.done():
            return True
        token = self.item.cancellation
        if token is not None and token.cancelled:
            self.future.set_exception(Canceled("the stylization was canceled before it ran"))
            return True
        return False


@dataclass
class _Queue:
    items: deque[_Pending] = field(default_factory=deque)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)


class MicroBatcher:
    """Queues items per `BatchKey` and runs them in batches, one concurrency slot each."""

    def __init__(
        self,
        compute: BatchCompute,
        *,
        slots: asyncio.Semaphore,
        max_batch_size: int,
        max_queue_delay_s: float,
        max_batch_pixels: int | None = None,
    ) -> None:
        """`slots` bounds the batches computing at once (shared with other work)."""
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        if max_queue_delay_s < 0:
            raise ValueError(f"max_queue_delay_s must not be negative, got {max_queue_delay_s}")
        self._compute = compute
        self._slots = slots
        self.max_batch_size = max_batch_size
        self.max_queue_delay_s = max_queue_delay_s
        self.max_batch_pixels = max_batch_pixels
        self._queues: dict[BatchKey, _Queue] = {}
        self._dispatchers: dict[BatchKey, asyncio.Task[None]] = {}
        self._running: set[asyncio.Task[None]] = set()

    @property
    def queued(self) -> int:
        """Items waiting for a batch now, all keys together."""
        return sum(len(queue.items) for queue in self._queues.values())

    async def submit(self, key: BatchKey, item: StylizeItem) -> Stylized:
        """Queues `item` under `key` and returns its output once its batch ran.

        Cancelling the caller drops the item if its batch has not started; a batch
        already computing finishes (a thread cannot be stopped) and keeps its slot.
        """
        future: asyncio.Future[Stylized] = asyncio.get_running_loop().create_future()
        queue = self._queues.setdefault(key, _Queue())
        queue.items.append(_Pending(item, future, time.perf_counter()))
        queue.arrived.set()
        if key not in self._dispatchers:
            self._dispatchers[key] = asyncio.create_task(
                self._dispatch(key, queue), name=f"batcher {key}"
            )
        return await future

    async def _dispatch(self, key: BatchKey, queue: _Queue) -> None:
        try:
            while _drop_abandoned(queue.items):
                limit = self.batch_limit(key)
                await self._fill(queue, limit)
                await self._slots.acquire()
                batch: list[_Pending] = []
                while queue.items and len(batch) < limit:
                    pending = queue.items.popleft()
                    if not pending.abandoned():
                        batch.append(pending)
                if not batch:
                    self._slots.release()
                    continue
                task = asyncio.create_task(self._run(key, batch))
                self._running.add(task)
                task.add_done_callback(self._running.discard)
        finally:
            # No await since the queue was seen empty: nothing was queued in between.
            del self._dispatchers[key]
            if not queue.items:
                self._queues.pop(key, None)

    def batch_limit(self, key: BatchKey) -> int:
        """The most images of `key`'s size one batch holds: by count, then by pixels."""
        if self.max_batch_pixels is None:
            return self.max_batch_size
        by_pixels = self.max_batch_pixels // max(1, key.height * key.width)
        return max(1, min(self.max_batch_size, by_pixels))

    async def _fill(self, queue: _Queue, limit: int) -> None:
        """Waits until a full batch is queued or the oldest item waited the maximum delay."""
        deadline = queue.items[0].queued_at + self.max_queue_delay_s
        while len(queue.items) < limit:
            left = deadline - time.perf_counter()
            if left <= 0:
                return
            queue.arrived.clear()
            try:
                await asyncio.wait_for(queue.arrived.wait(), left)
            except TimeoutError:
                return

    async def _run(self, key: BatchKey, batch: list[_Pending]) -> None:
        """Computes one batch in a worker thread, then frees its slot."""
        started = time.perf_counter()
        observe_batch(key.model_version, len(batch), [started - p.queued_at for p in batch])
        try:
            try:
                images = await asyncio.to_thread(self._compute, key, [p.item for p in batch])
            except Exception as exc:
                if len(batch) == 1:
                    _settle(batch[0], exc)
                    return
                logger.info(
                    "batch failed; running its items one at a time",
                    extra={"model_version": key.model_version, "batch_size": len(batch)},
                )
                for pending in batch:
                    await self._run_alone(key, pending)
                return
            share = (time.perf_counter() - started) / len(batch)
            for pending, image in zip(batch, images, strict=True):
                _settle(pending, Stylized(image, share, len(batch)))
        finally:
            self._slots.release()

    async def _run_alone(self, key: BatchKey, pending: _Pending) -> None:
        if pending.abandoned():
            return
        started = time.perf_counter()
        try:
            images = await asyncio.to_thread(self._compute, key, [pending.item])
        except Exception as exc:
            _settle(pending, exc)
            return
        _settle(pending, Stylized(images[0], time.perf_counter() - started, 1))


def _drop_abandoned(items: deque[_Pending]) -> bool:
    """Removes abandoned items from the front; whether any item is left."""
    while items and items[0].abandoned():
        items.popleft()
    return bool(items)


def _settle(pending: _Pending, outcome: Stylized | Exception) -> None:
    if pending.future.done():
        return
    if isinstance(outcome, Exception):
        pending.future.set_exception(outcome)
    else:
        pending.future.set_result(outcome)
