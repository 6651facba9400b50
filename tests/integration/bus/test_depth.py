"""Queue depth gauges of durable consumers, read from a real JetStream."""

from __future__ import annotations

import asyncio

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig
from prometheus_client import REGISTRY

from gouache.bus.consumer import DurableConsumer, Event
from gouache.bus.depth import QueueDepthSampler
from gouache.bus.jetstream import publish
from gouache.bus.subjects import JOBS_CREATED
from tests.integration.bus.helpers import job_created, wait_until

STREAM = "GOUACHE_JOBS"
DURABLE = "depth-test"


def _gauge(name: str, consumer: str = DURABLE) -> float | None:
    return REGISTRY.get_sample_value(name, {"stream": STREAM, "consumer": consumer})


async def test_depth_counts_pending_and_unacked_messages_until_they_are_handled(
    js: JetStreamContext,
) -> None:
    release = asyncio.Event()
    handled: list[str] = []

    async def handle(event: Event) -> None:
        await release.wait()
        handled.append(event.event_id)

    consumer = DurableConsumer(
        js,
        stream=STREAM,
        durable=DURABLE,
        filter_subjects=[JOBS_CREATED],
        handler=handle,
        max_in_flight=1,
        fetch_wait=0.2,
        depth_interval=0.05,
    )
    await consumer.start()
    try:
        for n in range(3):
            await publish(js, JOBS_CREATED, job_created(f"evt_{n}"), event_id=f"evt_{n}")
        # One message is in the handler (awaiting its ack), two wait for delivery.
        await wait_until(
            lambda: _gauge("gouache_queue_depth") == 3 and _gauge("gouache_queue_ack_pending") == 1,
            what="depth 3 with 1 awaiting an ack",
        )
        release.set()
        await wait_until(lambda: len(handled) == 3, what="all three handled")
        await wait_until(lambda: _gauge("gouache_queue_depth") == 0, what="depth back to 0")
        assert _gauge("gouache_queue_ack_pending") == 0
    finally:
        await consumer.stop()
    # A stopped consumer's depth is no longer known to this process.
    assert _gauge("gouache_queue_depth") is None
    assert _gauge("gouache_queue_ack_pending") is None


async def test_a_consumer_that_cannot_be_read_has_no_depth_series(js: JetStreamContext) -> None:
    sampler = QueueDepthSampler(js, stream=STREAM, consumer="never-created", timeout_s=1.0)
    assert await sampler.sample() is None
    assert _gauge("gouache_queue_depth", "never-created") is None


async def test_depth_of_a_consumer_made_elsewhere_is_sampled_once(js: JetStreamContext) -> None:
    # Created on the server but never fetched from: every message stays pending.
    await js.add_consumer(
        STREAM,
        config=ConsumerConfig(
            durable_name="depth-once", ack_policy=AckPolicy.EXPLICIT, filter_subject=JOBS_CREATED
        ),
    )
    await publish(js, JOBS_CREATED, job_created("evt_a"), event_id="evt_a")
    await publish(js, JOBS_CREATED, job_created("evt_b"), event_id="evt_b")
    sampler = QueueDepthSampler(js, stream=STREAM, consumer="depth-once")
    try:
        assert await sampler.sample() == 2
        assert _gauge("gouache_queue_depth", "depth-once") == 2
        assert _gauge("gouache_queue_ack_pending", "depth-once") == 0
    finally:
        await sampler.stop()
    assert _gauge("gouache_queue_depth", "depth-once") is None
