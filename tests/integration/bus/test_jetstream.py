"""Streams and publishing: configuration, headers, de-duplication, failures."""

from __future__ import annotations

import pytest
from nats.js import JetStreamContext
from nats.js.api import StorageType

from gouache.bus.jetstream import PublishError, ensure_streams, publish
from gouache.bus.subjects import JOBS_CREATED, STREAMS
from gouache.contracts.events.v1 import events_pb2
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
    assert [spec.name for spec in STREAMS] == ["GOUACHE_JOBS", "GOUACHE_EXECUTION"]


async def test_publish_sets_the_id_and_type_headers_and_protobuf_payload(
    js: JetStreamContext,
) -> None:
    ack = await publish(js, JOBS_CREATED, job_created("evt_1"), event_id="evt_1")

    [stored] = await stream_messages(js, "GOUACHE_JOBS")
    assert ack.stream == "GOUACHE_JOBS"
    assert stored.subject == JOBS_CREATED
    assert stored.headers == {
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
