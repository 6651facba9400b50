"""Queue depth of durable JetStream consumers, sampled periodically into Prometheus gauges."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from nats.js import JetStreamContext
from prometheus_client import Gauge

from gouache.bus.jetstream import NATS_ERRORS

logger = logging.getLogger(__name__)

QUEUE_DEPTH = Gauge(
    "gouache_queue_depth",
    "Messages a durable consumer has not settled: not yet delivered (num_pending) plus "
    "delivered and awaiting an ack (num_ack_pending). Every replica sharing the consumer "
    "reports the same value; aggregate with max.",
    ["stream", "consumer"],
)
QUEUE_ACK_PENDING = Gauge(
    "gouache_queue_ack_pending",
    "Messages of a durable consumer delivered to a handler and not yet acked (num_ack_pending).",
    ["stream", "consumer"],
)

DEFAULT_INTERVAL_S = 5.0


class QueueDepthSampler:
    """Reads one durable consumer's info every interval_s and sets its depth gauges.

    When the info cannot be read (NATS away, consumer gone) the consumer's series are
    removed rather than left at a stale value: a missing series means "unknown".
    """

    def __init__(
        self,
        js: JetStreamContext,
        *,
        stream: str,
        consumer: str,
        interval_s: float = DEFAULT_INTERVAL_S,
        timeout_s: float = 2.0,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self._js = js
        self._stream = stream
        self._consumer = consumer
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    async def sample(self) -> int | None:
        """Reads the consumer's info once and sets the gauges; the depth, or None if unread."""
        try:
            info = await self._js.consumer_info(
                self._stream, self._consumer, timeout=self._timeout_s
            )
        except NATS_ERRORS as exc:
            self._forget()
            if not self._failing:
                logger.warning(
                    "queue depth of %s/%s cannot be read: %s", self._stream, self._consumer, exc
                )
            self._failing = True
            return None
        self._failing = False
        pending = int(info.num_pending or 0)
        ack_pending = int(info.num_ack_pending or 0)
        QUEUE_DEPTH.labels(self._stream, self._consumer).set(pending + ack_pending)
        QUEUE_ACK_PENDING.labels(self._stream, self._consumer).set(ack_pending)
        return pending + ack_pending

    def start(self) -> None:
        """Samples now and then every interval_s, until stop()."""
        if self._task is None:
            self._task = asyncio.create_task(
                self._run(), name=f"queue-depth-{self._stream}-{self._consumer}"
            )

    async def stop(self) -> None:
        """Stops sampling and removes the consumer's series (this process no longer knows)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._forget()

    async def _run(self) -> None:
        while True:
            await self.sample()
            await asyncio.sleep(self._interval_s)

    def _forget(self) -> None:
        for gauge in (QUEUE_DEPTH, QUEUE_ACK_PENDING):
            with contextlib.suppress(KeyError):
                gauge.remove(self._stream, self._consumer)
