"""A cancellation reaches the tiling worker's watcher inside the canceling call's trace."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from gouache.bus import subjects
from gouache.bus.jetstream import publish
from gouache.contracts.events.v1 import events_pb2
from services.tiling.bus import CANCEL_WATCHER_NAME, CancelWatcher
from services.tiling.domain import CanceledJobs
from tests.helpers.tracing import collected_spans, named


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    yield from collected_spans()


async def test_the_cancel_watcher_continues_the_cancelers_trace(
    nats_js: tuple[NATS, JetStreamContext], spans: InMemorySpanExporter
) -> None:
    _, js = nats_js
    canceled = CanceledJobs()
    watcher = CancelWatcher(js, canceled, lookback_s=0)
    await watcher.start()
    try:
        event = events_pb2.JobCanceled(
            event_id="evt-cancel-trace", job_id="job-cancel-trace", owner_id="usr_1"
        )
        with trace.get_tracer("test").start_as_current_span("CancelJob"):
            await publish(js, subjects.JOBS_CANCELED, event, event_id=event.event_id)
        deadline = time.monotonic() + 10
        while "job-cancel-trace" not in canceled:
            assert time.monotonic() < deadline, "the cancellation never reached the watcher"
            await asyncio.sleep(0.02)
    finally:
        await watcher.stop()

    (published,) = named(spans.get_finished_spans(), f"publish {subjects.JOBS_CANCELED}")
    (processed,) = named(spans.get_finished_spans(), f"process {subjects.JOBS_CANCELED}")
    assert processed.kind is SpanKind.CONSUMER
    assert published.context is not None
    assert processed.parent is not None
    assert processed.parent.span_id == published.context.span_id
    assert processed.attributes is not None
    assert processed.attributes["messaging.consumer.group.name"] == CANCEL_WATCHER_NAME
    assert processed.attributes["gouache.job.id"] == "job-cancel-trace"
