"""DurableConsumer against a real JetStream: ack, retry, terminate, heartbeats, takeover."""

from __future__ import annotations

import asyncio
import time

import pytest
from nats.js import JetStreamContext

from gouache.bus.consumer import (
    Event,
    PermanentEventError,
    RetryableEventError,
)
from gouache.bus.jetstream import connect, publish, publish_payload
from gouache.bus.subjects import DLQ_STREAM, JOBS_CANCELED, JOBS_CREATED
from gouache.contracts.events.v1 import events_pb2
from tests.fixtures.nats import NatsServer
from tests.integration.bus.conftest import DURABLE, STREAM, ConsumerFactory
from tests.integration.bus.helpers import job_created, stream_messages, wait_until


async def _settled(js: JetStreamContext, stream_seq: int, durable: str = DURABLE) -> bool:
    """Whether the consumer has nothing pending or unacked up to stream_seq."""
    info = await js.consumer_info(STREAM, durable)
    return bool(info.num_ack_pending == 0 and info.ack_floor.stream_seq >= stream_seq)


async def test_a_handled_event_is_decoded_and_acked(
    js: JetStreamContext, start_consumer: ConsumerFactory
) -> None:
    received: list[Event] = []

    async def handle(event: Event) -> None:
        received.append(event)

    await start_consumer(handle)
    ack = await publish(js, JOBS_CREATED, job_created("evt_1"), event_id="evt_1")

    await wait_until(lambda: _settled(js, ack.seq), what="event acked")
    [event] = received
    assert event.subject == JOBS_CREATED
    assert event.message == job_created("evt_1")
    assert isinstance(event.message, events_pb2.JobCreated)
    assert (event.event_id, event.num_delivered, event.stream_sequence) == ("evt_1", 1, ack.seq)
    info = await js.consumer_info(STREAM, DURABLE)
    assert info.num_redelivered == 0


async def test_a_failing_handler_gets_the_event_again_until_it_succeeds(
    js: JetStreamContext, start_consumer: ConsumerFactory
) -> None:
    deliveries: list[int] = []

    async def handle(event: Event) -> None:
        deliveries.append(event.num_delivered)
        if event.num_delivered == 1:
            raise RetryableEventError("storage is busy", delay=0.1)
        if event.num_delivered == 2:
            raise RuntimeError("unexpected, but maybe transient")

    await start_consumer(handle)
    ack = await publish(js, JOBS_CREATED, job_created("evt_1"), event_id="evt_1")

    await wait_until(lambda: _settled(js, ack.seq), what="event acked after retries")
    assert deliveries == [1, 2, 3]


async def test_a_permanent_error_terminates_the_event(
    js: JetStreamContext, start_consumer: ConsumerFactory
) -> None:
    deliveries: list[int] = []

    async def handle(event: Event) -> None:
        deliveries.append(event.num_delivered)
        raise PermanentEventError("job does not exist")

    await start_consumer(handle, ack_wait=1.0)
    ack = await publish(js, JOBS_CREATED, job_created("evt_1"), event_id="evt_1")

    await wait_until(lambda: _settled(js, ack.seq), what="event terminated")
    info = await js.consumer_info(STREAM, DURABLE)
    assert deliveries == [1]
    assert info.num_redelivered == 0


async def test_an_event_is_terminated_after_max_deliver_failures(
    js: JetStreamContext, start_consumer: ConsumerFactory
) -> None:
    deliveries: list[int] = []

    async def handle(event: Event) -> None:
        deliveries.append(event.num_delivered)
        raise RuntimeError("always broken")

    await start_consumer(handle, max_deliver=3)
    ack = await publish(js, JOBS_CREATED, job_created("evt_1"), event_id="evt_1")

    await wait_until(lambda: _settled(js, ack.seq), what="event given up")
    assert deliveries == [1, 2, 3]


async def test_undecodable_or_mistyped_messages_are_terminated_unseen(
    js: JetStreamContext, start_consumer: ConsumerFactory
) -> None:
    handled: list[Event] = []

    async def handle(event: Event) -> None:
        handled.append(event)

    await start_consumer(handle, filter_subjects=[JOBS_CREATED, JOBS_CANCELED])
    await publish_payload(js, JOBS_CREATED, b"\xff\xff\xff", event_id="evt_garbage", event_type="x")
    await publish_payload(
        js,
        JOBS_CANCELED,
        job_created("evt_wrong").SerializeToString(),
        event_id="evt_wrong",
        event_type="gouache.events.v1.JobCreated",
    )
    ack = await publish(
        js, JOBS_CANCELED, events_pb2.JobCanceled(event_id="evt_ok"), event_id="evt_ok"
    )

    await wait_until(lambda: _settled(js, ack.seq), what="all three settled")
    assert [event.event_id for event in handled] == ["evt_ok"]


async def test_heartbeats_keep_a_long_handler_from_redelivery(
    js: JetStreamContext, start_consumer: ConsumerFactory
) -> None:
    deliveries: list[int] = []

    async def handle(event: Event) -> None:
        deliveries.append(event.num_delivered)
        await asyncio.sleep(2.5)  # the work itself: 2.5 ack_waits long

    await start_consumer(handle, ack_wait=1.0, max_in_flight=2)
    ack = await publish(js, JOBS_CREATED, job_created("evt_1"), event_id="evt_1")

    await wait_until(lambda: _settled(js, ack.seq), what="long event acked")
    assert deliveries == [1]


async def test_a_new_instance_takes_over_an_event_whose_worker_died(
    js: JetStreamContext, nats_server: NatsServer, start_consumer: ConsumerFactory
) -> None:
    started = asyncio.Event()
    redelivered: list[Event] = []

    async def hang(event: Event) -> None:
        started.set()
        await asyncio.Event().wait()

    async def handle(event: Event) -> None:
        redelivered.append(event)

    doomed_connection, doomed_js = await connect(nats_server.url, name="doomed-worker")
    doomed = await start_consumer(hang, js=doomed_js, drain_grace=0.1)
    ack = await publish(js, JOBS_CREATED, job_created("evt_1"), event_id="evt_1")
    await asyncio.wait_for(started.wait(), timeout=10)

    await doomed_connection.close()  # the worker dies: no ack, no nak, no more heartbeats
    await doomed.stop()
    await start_consumer(handle)

    await wait_until(lambda: _settled(js, ack.seq), what="event taken over and acked")
    [event] = redelivered
    assert (event.event_id, event.num_delivered) == ("evt_1", 2)


async def test_stopping_naks_unfinished_events_for_another_instance(
    js: JetStreamContext, start_consumer: ConsumerFactory
) -> None:
    started = asyncio.Event()
    taken_over: list[Event] = []

    async def hang(event: Event) -> None:
        started.set()
        await asyncio.Event().wait()

    async def handle(event: Event) -> None:
        taken_over.append(event)

    stopping = await start_consumer(hang, ack_wait=30.0, drain_grace=0.1)
    ack = await publish(js, JOBS_CREATED, job_created("evt_1"), event_id="evt_1")
    await asyncio.wait_for(started.wait(), timeout=10)
    await stopping.stop()
    await start_consumer(handle, ack_wait=30.0)

    await wait_until(lambda: _settled(js, ack.seq), within=5, what="taken over before ack_wait")
    assert [event.num_delivered for event in taken_over] == [2]


@pytest.mark.parametrize("max_in_flight", [1, 3])
async def test_no_more_than_max_in_flight_handlers_run_at_once(
    js: JetStreamContext, start_consumer: ConsumerFactory, max_in_flight: int
) -> None:
    running: set[str] = set()
    peak = 0
    order: list[str] = []
    reached_peak = asyncio.Event()

    async def handle(event: Event) -> None:
        nonlocal peak
        running.add(event.event_id)
        order.append(event.event_id)
        peak = max(peak, len(running))
        if peak >= max_in_flight:
            reached_peak.set()
        await asyncio.wait_for(reached_peak.wait(), timeout=5)
        running.discard(event.event_id)

    for n in range(6):
        ack = await publish(js, JOBS_CREATED, job_created(f"evt_{n}"), event_id=f"evt_{n}")
    await start_consumer(handle, max_in_flight=max_in_flight)

    await wait_until(lambda: _settled(js, ack.seq), what="all events acked")
    assert peak == max_in_flight
    assert sorted(order) == [f"evt_{n}" for n in range(6)]
    if max_in_flight == 1:
        assert order == sorted(order)


async def test_a_redelivery_of_an_event_still_being_handled_here_does_not_run_or_dead_letter_it(
    js: JetStreamContext, start_consumer: ConsumerFactory
) -> None:
    """JetStream redelivers a message whose heartbeats it missed to the consumer that is
    still working on it: after a NATS crash (what chaos found: a job dead-lettered and
    failed while its result was being stored), or, as here, after the handler held the
    event loop past ack_wait. The redelivery is past max_deliver (1). It must neither
    start the handler a second time nor dead-letter a delivery that is about to succeed.
    """
    release = asyncio.Event()
    runs: list[int] = []

    async def handle(event: Event) -> None:
        runs.append(event.num_delivered)
        time.sleep(1.5)  # noqa: ASYNC251 - holds the loop on purpose: no heartbeat for 1.5 ack_waits
        await release.wait()

    consumer = await start_consumer(handle, ack_wait=1.0, max_deliver=1, max_in_flight=2)
    ack = await publish(js, JOBS_CREATED, job_created("evt_1"), event_id="evt_1")

    async def redelivery_taken() -> bool:
        joined = consumer.redeliveries_joined >= 1
        return joined or bool(await stream_messages(js, DLQ_STREAM.name))

    await wait_until(redelivery_taken, within=10, what="the event redelivered while handled")
    release.set()
    await wait_until(lambda: _settled(js, ack.seq), within=10, what="event acked")
    assert runs == [1]
    assert await stream_messages(js, DLQ_STREAM.name) == []
    assert consumer.redeliveries_joined == 1
