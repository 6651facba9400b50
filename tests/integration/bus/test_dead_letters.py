"""Dead letters against a real JetStream: after exactly N deliveries, with the headers that say why."""

from __future__ import annotations

import asyncio

from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg
from prometheus_client import REGISTRY

from gouache.bus.consumer import (
    DEAD_LETTER_ATTEMPTS,
    Event,
    PermanentEventError,
    RetryableEventError,
)
from gouache.bus.deadletter import DEAD_LETTER_TYPES, DeadLetter, dead_letter_subject
from gouache.bus.jetstream import connect, ensure_streams, publish, publish_payload
from gouache.bus.subjects import DLQ_STREAM, JOBS_CREATED
from gouache.contracts.events.v1 import events_pb2
from tests.fixtures.nats import NatsServer
from tests.integration.bus.conftest import DURABLE, STREAM, ConsumerFactory
from tests.integration.bus.helpers import job_created, stream_messages, wait_until


def dead_letters_counted(stream: str = STREAM, consumer: str = DURABLE) -> float:
    value = REGISTRY.get_sample_value(
        "gouache_dead_letters_total", {"stream": stream, "consumer": consumer}
    )
    return value or 0.0


async def _settled(js: JetStreamContext, stream_seq: int, durable: str = DURABLE) -> bool:
    info = await js.consumer_info(STREAM, durable)
    return bool(info.num_ack_pending == 0 and info.ack_floor.stream_seq >= stream_seq)


async def _dead_letters(js: JetStreamContext, count: int) -> list[RawStreamMsg]:
    async def enough() -> bool:
        return len(await stream_messages(js, DLQ_STREAM.name)) >= count

    await wait_until(enough, what=f"{count} dead letters")
    return await stream_messages(js, DLQ_STREAM.name)


async def test_a_poison_message_is_dead_lettered_after_exactly_max_deliver_deliveries(
    js: JetStreamContext, start_consumer: ConsumerFactory
) -> None:
    deliveries: list[int] = []

    async def handle(event: Event) -> None:
        deliveries.append(event.num_delivered)
        raise RuntimeError(f"tile 3 does not fit\nin memory (delivery {event.num_delivered})")

    before = dead_letters_counted()
    await start_consumer(handle, max_deliver=4)
    ack = await publish(js, JOBS_CREATED, job_created("evt_1", job_id="job_7"), event_id="evt_1")

    [letter] = await _dead_letters(js, 1)
    await wait_until(lambda: _settled(js, ack.seq), what="original terminated")
    assert deliveries == [1, 2, 3, 4]
    assert letter.subject == "gouache.dlq.gouache.jobs.created" == dead_letter_subject(JOBS_CREATED)
    assert letter.data == job_created("evt_1", job_id="job_7").SerializeToString()
    headers = letter.headers or {}
    assert headers["Gouache-Dlq-Subject"] == JOBS_CREATED
    assert headers["Gouache-Dlq-Stream"] == STREAM
    assert headers["Gouache-Dlq-Sequence"] == str(ack.seq)
    assert headers["Gouache-Dlq-Consumer"] == DURABLE
    assert headers["Gouache-Dlq-Deliveries"] == "4"
    assert headers["Gouache-Dlq-Error"] == (
        "RuntimeError: tile 3 does not fit in memory (delivery 4)"
    )
    assert headers["Gouache-Dlq-Event-Id"] == "evt_1"
    assert headers["Gouache-Dlq-Job-Id"] == "job_7"
    assert headers["Gouache-Event-Type"] == "gouache.events.v1.JobCreated"
    assert headers["Nats-Msg-Id"] == f"dlq-{STREAM}-{ack.seq}-{DURABLE}"
    assert dead_letters_counted() == before + 1
    info = await js.consumer_info(STREAM, DURABLE)
    assert info.config.max_deliver == 4 + DEAD_LETTER_ATTEMPTS
    # Terminated: never delivered again, however long we look.
    await asyncio.sleep(0.5)
    assert deliveries == [1, 2, 3, 4]
    assert DeadLetter.from_headers(headers).describe(letter.seq) == (
        f"processing of gouache.jobs.created (stream GOUACHE_JOBS, sequence {ack.seq}) by "
        "consumer tiling failed 4 times: RuntimeError: tile 3 does not fit in memory "
        "(delivery 4); the message is in dead-letter subject gouache.dlq.gouache.jobs.created "
        f"(stream GOUACHE_DLQ, sequence {letter.seq})"
    )


async def test_a_transient_failure_that_succeeds_on_redelivery_is_not_dead_lettered(
    js: JetStreamContext, start_consumer: ConsumerFactory
) -> None:
    deliveries: list[int] = []

    async def handle(event: Event) -> None:
        deliveries.append(event.num_delivered)
        if event.num_delivered == 1:
            raise RetryableEventError("storage is busy", delay=0.05)

    before = dead_letters_counted()
    await start_consumer(handle, max_deliver=2)
    ack = await publish(js, JOBS_CREATED, job_created("evt_1"), event_id="evt_1")

    await wait_until(lambda: _settled(js, ack.seq), what="event acked on its 2nd delivery")
    assert deliveries == [1, 2]
    assert await stream_messages(js, DLQ_STREAM.name) == []
    assert dead_letters_counted() == before


async def test_undecodable_and_refused_messages_are_dead_lettered_on_their_first_delivery(
    js: JetStreamContext, start_consumer: ConsumerFactory
) -> None:
    async def handle(event: Event) -> None:
        raise PermanentEventError(f"job {getattr(event.message, 'job_id', '')} does not exist")

    before = dead_letters_counted()
    await start_consumer(handle)
    garbage = await publish_payload(
        js, JOBS_CREATED, b"\xff\xff\xff", event_id="evt_garbage", event_type="x"
    )
    refused = await publish(js, JOBS_CREATED, job_created("evt_2", "job_9"), event_id="evt_2")

    first, second = await _dead_letters(js, 2)
    await wait_until(lambda: _settled(js, refused.seq), what="both terminated")
    undecodable = DeadLetter.from_headers(first.headers or {})
    assert (undecodable.stream_sequence, undecodable.deliveries) == (garbage.seq, 1)
    assert undecodable.error == "event type x on gouache.jobs.created, expected " + (
        "gouache.events.v1.JobCreated"
    )
    assert undecodable.job_id == ""
    assert undecodable.event_id == "evt_garbage"
    assert first.data == b"\xff\xff\xff"
    permanent = DeadLetter.from_headers(second.headers or {})
    assert (permanent.deliveries, permanent.job_id) == (1, "job_9")
    assert permanent.error == "job job_9 does not exist"
    assert dead_letters_counted() == before + 2


async def test_a_message_whose_last_delivery_never_settled_is_dead_lettered_unhandled(
    js: JetStreamContext, nats_server: NatsServer, start_consumer: ConsumerFactory
) -> None:
    """A message that kills its worker on every delivery must not kill every worker forever."""
    deliveries: list[int] = []
    hung = asyncio.Event()

    async def crash_or_hang(event: Event) -> None:
        deliveries.append(event.num_delivered)
        if event.num_delivered == 1:
            raise RuntimeError("out of memory")
        hung.set()
        await asyncio.Event().wait()

    async def never(event: Event) -> None:
        raise AssertionError("the handler ran beyond max_deliver")

    doomed_connection, doomed_js = await connect(nats_server.url, name="doomed-worker")
    doomed = await start_consumer(crash_or_hang, js=doomed_js, max_deliver=2, drain_grace=0.1)
    ack = await publish(js, JOBS_CREATED, job_created("evt_1"), event_id="evt_1")
    await asyncio.wait_for(hung.wait(), timeout=10)
    await doomed_connection.close()  # the 2nd delivery's worker dies: no ack, nak or term
    await doomed.stop()
    await start_consumer(never, max_deliver=2, ack_wait=1.0)

    [letter] = await _dead_letters(js, 1)
    await wait_until(lambda: _settled(js, ack.seq), what="original terminated")
    assert deliveries == [1, 2]
    dead = DeadLetter.from_headers(letter.headers or {})
    assert dead.deliveries == 3
    assert dead.error == "delivery 2 did not finish (its worker stopped or timed out)"


async def test_a_dead_letter_that_cannot_be_stored_is_retried_until_it_can(
    js: JetStreamContext, start_consumer: ConsumerFactory
) -> None:
    deliveries: list[int] = []

    async def handle(event: Event) -> None:
        deliveries.append(event.num_delivered)
        raise RuntimeError("always broken")

    await js.delete_stream(DLQ_STREAM.name)
    await start_consumer(handle, max_deliver=2)
    ack = await publish(js, JOBS_CREATED, job_created("evt_1"), event_id="evt_1")

    async def redelivered_for_dead_lettering() -> bool:
        info = await js.consumer_info(STREAM, DURABLE)
        return info.delivered.consumer_seq >= 3

    await wait_until(redelivered_for_dead_lettering, what="dead-lettering retried")
    await ensure_streams(js, [DLQ_STREAM])

    [letter] = await _dead_letters(js, 1)
    await wait_until(lambda: _settled(js, ack.seq), what="original terminated")
    assert deliveries == [1, 2]
    assert DeadLetter.from_headers(letter.headers or {}).error == "RuntimeError: always broken"


async def test_the_dlq_consumer_itself_never_dead_letters(
    js: JetStreamContext, start_consumer: ConsumerFactory
) -> None:
    async def refuse(event: Event) -> None:
        raise PermanentEventError("cannot apply")

    await start_consumer(
        refuse,
        stream=DLQ_STREAM.name,
        durable="dlq-reader",
        filter_subjects=[f"{dead_letter_subject('')}>"],
        message_types=DEAD_LETTER_TYPES,
        dead_letters=False,
    )
    await start_consumer(refuse, durable="poisoned", max_deliver=1)
    await publish(js, JOBS_CREATED, job_created("evt_1"), event_id="evt_1")

    async def reader_done() -> bool:
        info = await js.consumer_info(DLQ_STREAM.name, "dlq-reader")
        return bool(info.delivered.stream_seq >= 1 and info.num_ack_pending == 0)

    await wait_until(reader_done, what="the DLQ reader settled the dead letter")
    [letter] = await stream_messages(js, DLQ_STREAM.name)
    assert letter.subject == dead_letter_subject(JOBS_CREATED)
    assert DEAD_LETTER_TYPES[letter.subject] is events_pb2.JobCreated


def test_a_dead_letter_id_fits_an_event_id_column() -> None:
    short = DeadLetter("gouache.jobs.created", STREAM, 12, DURABLE, 5, "boom")
    assert short.message_id == "dlq-GOUACHE_JOBS-12-tiling"
    long = DeadLetter("gouache.jobs.created", STREAM, 12, "a-consumer-" + "x" * 60, 5, "boom")
    assert len(long.message_id) <= 64
    assert (
        long.message_id
        != DeadLetter(
            "gouache.jobs.created", STREAM, 13, "a-consumer-" + "x" * 60, 5, "boom"
        ).message_id
    )
