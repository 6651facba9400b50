"""Streams and publishing: configuration, headers, de-duplication, failures."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from nats.js import JetStreamContext
from nats.js.api import StorageType

from gouache.bus.jetstream import PublishError, connect, disconnect, ensure_streams, publish
from gouache.bus.subjects import JOBS_CREATED, STREAMS
from gouache.contracts.events.v1 import events_pb2
from tests.fixtures.nats import NatsServer, running_nats_server
from tests.integration.bus.helpers import job_created, stream_messages


async def test_streams_are_file_backed_deduplicating_and_ensured_idempotently(
    js: JetStreamContext,
) -> None:
    await ensure_streams(js)

    for spec in STREAMS:
        config = (await js.stream_info(spec.name)).config
        assert config.subjects == list(spec.subjects)
        assert config.storage == StorageType.FILE
        assert config.duplicate_window == 600
    assert [spec.name for spec in STREAMS] == ["GOUACHE_JOBS", "GOUACHE_EXECUTION", "GOUACHE_DLQ"]


async def test_publish_sets_the_id_and_type_headers_and_protobuf_payload(
    js: JetStreamContext,
) -> None:
    ack = await publish(js, JOBS_CREATED, job_created("evt_1"), event_id="evt_1")

    [stored] = await stream_messages(js, "GOUACHE_JOBS")
    assert ack.stream == "GOUACHE_JOBS"
    assert stored.subject == JOBS_CREATED
    # A publish also carries W3C trace context once a tracer provider is installed, which
    # OpenTelemetry allows once per process: whether earlier tests in this process installed
    # one decides it (tests/unit/bus/test_tracing.py checks those headers).
    headers = {
        name: value
        for name, value in (stored.headers or {}).items()
        if name not in ("traceparent", "tracestate")
    }
    assert headers == {
        "Nats-Msg-Id": "evt_1",
        "Content-Type": "application/protobuf",
        "Gouache-Event-Type": "gouache.events.v1.JobCreated",
    }
    assert events_pb2.JobCreated.FromString(stored.data or b"") == job_created("evt_1")


async def test_a_republished_event_is_dropped_as_a_duplicate(js: JetStreamContext) -> None:
    first = await publish(js, JOBS_CREATED, job_created("evt_1"), event_id="evt_1")
    again = await publish(js, JOBS_CREATED, job_created("evt_1"), event_id="evt_1")

    assert not first.duplicate
    assert again.duplicate
    assert len(await stream_messages(js, "GOUACHE_JOBS")) == 1


async def test_publishing_where_no_stream_listens_raises_publish_error(
    js: JetStreamContext,
) -> None:
    with pytest.raises(PublishError, match=r"evt_1 on gouache\.nowhere was not acknowledged"):
        await publish(js, "gouache.nowhere", job_created("evt_1"), event_id="evt_1")


@pytest.mark.parametrize("event_id", ["", "evt_other"])
async def test_missing_or_contradicting_event_ids_are_refused(
    js: JetStreamContext, event_id: str
) -> None:
    with pytest.raises(ValueError, match="event_id"):
        await publish(js, JOBS_CREATED, job_created("evt_1"), event_id=event_id)


async def test_disconnect_closes_even_when_the_server_is_already_gone(tmp_path: Path) -> None:
    # A whole mesh stopping stops NATS first: draining then refuses (reconnecting).
    with running_nats_server(tmp_path) as server:
        connection, _ = await connect(server.url, name="leaving", reconnect_time_wait=0.1)
        server.stop()
        for _ in range(50):
            if connection.is_reconnecting:
                break
            await asyncio.sleep(0.05)
        assert connection.is_reconnecting
        await disconnect(connection)
        assert connection.is_closed
        await disconnect(connection)  # again: nothing to do


async def test_disconnect_drains_a_live_connection(nats_server: NatsServer) -> None:
    connection, _ = await connect(nats_server.url, name="leaving")
    await disconnect(connection)
    assert connection.is_closed
