"""Durable JetStream pull consumers that decode protobuf events and ack, retry or drop them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError, Message
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from gouache.bus.deadletter import DeadLetter, job_id_of, publish_dead_letter
from gouache.bus.depth import DEFAULT_INTERVAL_S, QueueDepthSampler
from gouache.bus.jetstream import (
    HEADER_EVENT_TYPE,
    HEADER_MSG_ID,
    NATS_ERRORS,
    PublishError,
    backoff_delay,
)
from gouache.bus.subjects import MESSAGE_TYPES
from gouache.bus.tracing import process_span

logger = logging.getLogger(__name__)

DEAD_LETTER_ATTEMPTS = 10
"""Deliveries JetStream allows beyond max_deliver, to retry a dead-lettering that failed."""

_REMEMBERED_ERRORS = 1000


class PermanentEventError(Exception):
    """The event can never be handled (malformed, refers to nothing): drop it, no redelivery."""


class RetryableEventError(Exception):
    """The event may succeed later; redeliver it after delay seconds, or the usual backoff."""

    def __init__(self, message: str, *, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


@dataclass(frozen=True)
class Event:
    """One delivery of an event to a handler."""

    subject: str
    message: Message
    event_id: str
    num_delivered: int
    """1 on the first delivery, more on redeliveries."""
    stream_sequence: int
    headers: Mapping[str, str] = field(default_factory=dict)
    """The message's headers (the dead-letter ones on a DLQ subject)."""


Handler = Callable[[Event], Awaitable[None]]


class _Delivery:
    """A message this process is handling, as JetStream last delivered it.

    `msg` moves to the newest delivery when JetStream redelivers the message while its
    handler still runs here, so heartbeats and the final ack, nak or term go to the
    delivery the server is tracking.
    """

    __slots__ = ("msg",)

    def __init__(self, msg: Msg) -> None:
        self.msg = msg


class DurableConsumer:
    """Feeds events from a durable JetStream pull consumer to an async handler.

    Outcome of a delivery, by what the handler does:
    - returns: the message is acked.
    - raises PermanentEventError (or the message cannot be decoded): it is dead-lettered
      (see below) at once; JetStream never redelivers it.
    - raises anything else (RetryableEventError to choose the delay): it is nak'ed with an
      exponential backoff and redelivered, up to max_deliver deliveries in all, after
      which it is dead-lettered.
    - a delivery beyond max_deliver (the last one never settled: its worker died or
      timed out) is dead-lettered without running the handler again, so a message that
      crashes its worker cannot crash it forever.
    Dead-lettering copies the message to gouache.dlq.<subject> in the DLQ stream with
    headers naming the subject, stream, sequence, consumer, deliveries and last error
    (gouache.bus.deadletter), counts it in gouache_dead_letters_total{stream,consumer},
    then terminates the original. When the copy cannot be stored the original is nak'ed
    and tried again, up to DEAD_LETTER_ATTEMPTS more deliveries. With
    dead_letters=False (the consumer of the DLQ itself) a message given up on is only
    terminated and logged.
    - runs long: the consumer sends in-progress heartbeats every ack_wait/3 so JetStream
      does not redeliver it meanwhile; if this process dies, the heartbeats stop and the
      message goes to another instance after ack_wait.
    - is redelivered to this consumer while its handler still runs here (JetStream
      forgets the heartbeats when it restarts, and redelivers what was pending): the
      redelivery joins the running handler instead of starting a second one or, past
      max_deliver, dead-lettering work that is about to succeed; heartbeats and the
      outcome then go to the newest delivery.
    Handlers must be idempotent on ``Event.event_id`` (see ``mark_processed``): delivery is
    at least once. At most max_in_flight handlers run at once (1 suits a GPU worker).
    """

    def __init__(
        self,
        js: JetStreamContext,
        *,
        stream: str,
        durable: str,
        filter_subjects: Sequence[str],
        handler: Handler,
        message_types: Mapping[str, type[Message]] = MESSAGE_TYPES,
        ack_wait: float = 30.0,
        max_deliver: int = 5,
        max_in_flight: int = 1,
        deliver_policy: DeliverPolicy = DeliverPolicy.ALL,
        retry_initial: float = 1.0,
        retry_max: float = 60.0,
        fetch_wait: float = 1.0,
        drain_grace: float = 10.0,
        depth_interval: float = DEFAULT_INTERVAL_S,
        dead_letters: bool = True,
    ) -> None:
        if not filter_subjects:
            raise ValueError("a consumer needs at least one filter subject")
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        if max_deliver < 1:
            raise ValueError("max_deliver must be at least 1")
        self._js = js
        self._stream = stream
        self._durable = durable
        self._filter_subjects = tuple(filter_subjects)
        self._handler = handler
        self._message_types = message_types
        self._ack_wait = ack_wait
        self._max_deliver = max_deliver
        self._max_in_flight = max_in_flight
        self._deliver_policy = deliver_policy
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._fetch_wait = fetch_wait
        self._drain_grace = drain_grace
        self._dead_letters = dead_letters
        self._last_errors: OrderedDict[int, str] = OrderedDict()
        self._subscription: JetStreamContext.PullSubscription | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._active: dict[int, _Delivery] = {}
        self._joined = 0
        self._slot_freed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._depth = QueueDepthSampler(
            js, stream=stream, consumer=durable, interval_s=depth_interval
        )

    @property
    def in_flight(self) -> int:
        """How many handlers are running now."""
        return len(self._handlers)

    @property
    def redeliveries_joined(self) -> int:
        """Redeliveries that arrived while their message's handler still ran here."""
        return self._joined

    async def start(self) -> None:
        """Create or update the durable consumer, bind to it and start fetching."""
        if self._loop_task is not None:
            raise RuntimeError(f"consumer {self._durable} is already running")
        self._stopping.clear()
        self._subscription = await self._subscribe()
        self._loop_task = asyncio.create_task(self._fetch_loop(), name=f"consumer-{self._durable}")
        self._depth.start()

    async def stop(self) -> None:
        """Stop fetching, let running handlers finish for up to drain_grace seconds.

        Handlers still running then are cancelled and their messages nak'ed, so another
        instance gets them at once instead of after ack_wait.
        """
        loop_task, self._loop_task = self._loop_task, None
        if loop_task is None:
            return
        self._stopping.set()
        self._slot_freed.set()
        await self._depth.stop()
        await loop_task
        await self._drain()
        if self._subscription is not None:
            with contextlib.suppress(*NATS_ERRORS):
                await self._subscription.unsubscribe()
            self._subscription = None

    async def _subscribe(self) -> JetStreamContext.PullSubscription:
        await self._js.add_consumer(self._stream, config=self._consumer_config())
        return await self._js.pull_subscribe_bind(durable=self._durable, stream=self._stream)

    def _consumer_config(self) -> ConsumerConfig:
        single = self._filter_subjects[0] if len(self._filter_subjects) == 1 else None
        return ConsumerConfig(
            name=self._durable,
            durable_name=self._durable,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self._ack_wait,
            max_deliver=self._max_deliver + (DEAD_LETTER_ATTEMPTS if self._dead_letters else 0),
            deliver_policy=self._deliver_policy,
            filter_subject=single,
            filter_subjects=None if single else list(self._filter_subjects),
        )

    async def _fetch_loop(self) -> None:
        failures = 0
        while await self._wait_for_free_slot():
            try:
                messages = await self._fetch(self._max_in_flight - len(self._handlers))
            except TimeoutError:
                failures = 0
                continue
            except Exception:
                failures += 1
                delay = backoff_delay(
                    failures, initial=self._retry_initial, maximum=self._retry_max
                )
                logger.warning(
                    "consumer %s: fetch failed (attempt %d), retrying in %.1fs",
                    self._durable,
                    failures,
                    delay,
                    exc_info=True,
                )
                await self._pause(delay)
                await self._resubscribe()
                continue
            failures = 0
            for msg in messages:
                self._dispatch(msg)

    async def _fetch(self, batch: int) -> list[Msg]:
        if self._subscription is None:
            raise TimeoutError
        return await self._subscription.fetch(batch=batch, timeout=self._fetch_wait)

    async def _wait_for_free_slot(self) -> bool:
        """Wait until a handler slot is free; False once stopping."""
        while len(self._handlers) >= self._max_in_flight and not self._stopping.is_set():
            self._slot_freed.clear()
            await self._slot_freed.wait()
        return not self._stopping.is_set()

    async def _pause(self, delay: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=delay)

    async def _resubscribe(self) -> None:
        """Recreate the consumer and binding, in case the server lost them."""
        if self._stopping.is_set():
            return
        try:
            subscription = await self._subscribe()
        except Exception as exc:
            logger.warning("consumer %s: cannot resubscribe yet: %s", self._durable, exc)
            return
        if self._subscription is not None:
            with contextlib.suppress(*NATS_ERRORS):
                await self._subscription.unsubscribe()
        self._subscription = subscription

    def _dispatch(self, msg: Msg) -> None:
        sequence = msg.metadata.sequence.stream
        running = self._active.get(sequence)
        if running is not None:
            self._joined += 1
            logger.info(
                "consumer %s: message %d on %s redelivered (delivery %d) while delivery %d "
                "is still being handled here; the running handler settles it",
                self._durable,
                sequence,
                msg.subject,
                msg.metadata.num_delivered,
                running.msg.metadata.num_delivered,
            )
            running.msg = msg
            return
        delivery = _Delivery(msg)
        self._active[sequence] = delivery
        task = asyncio.create_task(self._process(delivery))
        self._handlers.add(task)
        task.add_done_callback(self._on_handler_done)

    def _on_handler_done(self, task: asyncio.Task[None]) -> None:
        self._handlers.discard(task)
        self._slot_freed.set()
        if not task.cancelled() and task.exception() is not None:
            logger.error("consumer %s: delivery crashed", self._durable, exc_info=task.exception())

    async def _drain(self) -> None:
        running = set(self._handlers)
        if not running:
            return
        _, late = await asyncio.wait(running, timeout=self._drain_grace)
        for task in late:
            task.cancel()
        if late:
            logger.warning(
                "consumer %s: cancelled %d handlers still running after %.1fs",
                self._durable,
                len(late),
                self._drain_grace,
            )
            await asyncio.gather(*late, return_exceptions=True)

    async def _process(self, delivery: _Delivery) -> None:
        sequence = delivery.msg.metadata.sequence.stream
        try:
            await self._handle(delivery, sequence)
        finally:
            self._active.pop(sequence, None)

    async def _handle(self, delivery: _Delivery, sequence: int) -> None:
        """Runs one delivery; the outcome settles `delivery.msg`, the newest delivery."""
        msg = delivery.msg
        if self._dead_letters and msg.metadata.num_delivered > self._max_deliver:
            error = self._last_errors.pop(sequence, None) or (
                f"delivery {self._max_deliver} did not finish (its worker stopped or timed out)"
            )
            await self._give_up(msg, None, error)
            return
        event: Event | None = None
        try:
            event = self._decode(msg)
            async with self._heartbeats(delivery):
                await self._traced_handler(msg, event)
        except PermanentEventError as exc:
            await self._give_up(delivery.msg, event, str(exc))
        except asyncio.CancelledError:
            await self._settle(delivery.msg.nak(), delivery.msg)
            raise
        except Exception as exc:
            await self._retry_or_give_up(delivery.msg, event, exc)
        else:
            self._last_errors.pop(sequence, None)
            await self._settle(delivery.msg.ack_sync(), delivery.msg)

    def _decode(self, msg: Msg) -> Event:
        message_type = self._message_types.get(msg.subject)
        if message_type is None:
            raise PermanentEventError(f"no message type is known for subject {msg.subject}")
        headers = msg.headers or {}
        declared = headers.get(HEADER_EVENT_TYPE)
        expected = message_type.DESCRIPTOR.full_name
        if declared and declared != expected:
            raise PermanentEventError(
                f"event type {declared} on {msg.subject}, expected {expected}"
            )
        message = message_type()
        try:
            message.ParseFromString(msg.data)
        except DecodeError as exc:
            raise PermanentEventError(f"undecodable {expected}: {exc}") from exc
        event_id = headers.get(HEADER_MSG_ID) or str(getattr(message, "event_id", ""))
        if not event_id:
            raise PermanentEventError(f"{expected} without an event id")
        metadata = msg.metadata
        return Event(
            subject=msg.subject,
            message=message,
            event_id=event_id,
            num_delivered=metadata.num_delivered,
            stream_sequence=metadata.sequence.stream,
            headers=dict(headers),
        )

    async def _traced_handler(self, msg: Msg, event: Event) -> None:
        """Runs the handler in a CONSUMER span, a child of the publisher's trace context."""
        with process_span(
            msg.headers,
            subject=msg.subject,
            stream=self._stream,
            consumer=self._durable,
            event_id=event.event_id,
            event_type=event.message.DESCRIPTOR.full_name,
            delivery_count=event.num_delivered,
            stream_sequence=event.stream_sequence,
            body_size=len(msg.data),
            job_id=str(getattr(event.message, "job_id", "")),
        ):
            await self._handler(event)

    @contextlib.asynccontextmanager
    async def _heartbeats(self, delivery: _Delivery) -> AsyncIterator[None]:
        beat = asyncio.create_task(self._beat(delivery))
        try:
            yield
        finally:
            beat.cancel()

    async def _beat(self, delivery: _Delivery) -> None:
        interval = self._ack_wait / 3
        while True:
            await asyncio.sleep(interval)
            try:
                await delivery.msg.in_progress()
            except NATS_ERRORS as exc:
                logger.warning("consumer %s: in-progress heartbeat failed: %s", self._durable, exc)

    async def _retry_or_give_up(self, msg: Msg, event: Event | None, exc: Exception) -> None:
        delivered = msg.metadata.num_delivered
        if delivered >= self._max_deliver:
            logger.error(
                "consumer %s: message %d on %s failed on all %d deliveries",
                self._durable,
                msg.metadata.sequence.stream,
                msg.subject,
                delivered,
                exc_info=exc,
            )
            await self._give_up(msg, event, f"{type(exc).__name__}: {exc}")
            return
        self._remember_error(msg.metadata.sequence.stream, f"{type(exc).__name__}: {exc}")
        delay = backoff_delay(delivered, initial=self._retry_initial, maximum=self._retry_max)
        if isinstance(exc, RetryableEventError) and exc.delay is not None:
            delay = exc.delay
        logger.warning(
            "consumer %s: delivery %d of message %d on %s failed, retrying in %.1fs",
            self._durable,
            delivered,
            msg.metadata.sequence.stream,
            msg.subject,
            delay,
            exc_info=not isinstance(exc, RetryableEventError),
        )
        await self._settle(msg.nak(delay=delay), msg)

    def _remember_error(self, sequence: int, error: str) -> None:
        """Keep the last error of a message, for its dead letter if its next delivery dies."""
        self._last_errors[sequence] = error
        self._last_errors.move_to_end(sequence)
        while len(self._last_errors) > _REMEMBERED_ERRORS:
            self._last_errors.popitem(last=False)

    async def _give_up(self, msg: Msg, event: Event | None, error: str) -> None:
        """Dead-letter msg and terminate it; nak it instead when the DLQ cannot take it."""
        metadata = msg.metadata
        sequence = metadata.sequence.stream
        if not self._dead_letters:
            logger.error(
                "consumer %s: dropping message %d on %s after %d deliveries: %s",
                self._durable,
                sequence,
                msg.subject,
                metadata.num_delivered,
                error,
            )
            await self._settle(msg.term(), msg)
            return
        letter = DeadLetter(
            subject=msg.subject,
            stream=self._stream,
            stream_sequence=sequence,
            consumer=self._durable,
            deliveries=metadata.num_delivered,
            error=error,
            event_id=event.event_id if event else (msg.headers or {}).get(HEADER_MSG_ID, ""),
            job_id=job_id_of(event.message if event else None),
        )
        try:
            ack = await publish_dead_letter(self._js, msg, letter)
        except PublishError as exc:
            self._remember_error(sequence, error)
            delay = backoff_delay(
                metadata.num_delivered, initial=self._retry_initial, maximum=self._retry_max
            )
            logger.warning(
                "consumer %s: cannot dead-letter message %d on %s yet (%s); retrying in %.1fs",
                self._durable,
                sequence,
                msg.subject,
                exc,
                delay,
            )
            await self._settle(msg.nak(delay=delay), msg)
            return
        self._last_errors.pop(sequence, None)
        logger.error(
            "consumer %s: dead-lettered message %d on %s after %d deliveries to %s "
            "(DLQ sequence %d): %s",
            self._durable,
            sequence,
            msg.subject,
            metadata.num_delivered,
            ack.stream,
            ack.seq,
            error,
            extra={"dead_letter_job_id": letter.job_id} if letter.job_id else None,
        )
        await self._settle(msg.term(), msg)

    async def _settle(self, reply: Awaitable[object], msg: Msg) -> None:
        """Send an ack/nak/term; if that fails, JetStream redelivers after ack_wait."""
        try:
            await reply
        except NATS_ERRORS as exc:
            logger.warning(
                "consumer %s: could not settle message on %s: %s", self._durable, msg.subject, exc
            )
