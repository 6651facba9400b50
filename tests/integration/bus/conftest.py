"""A private NATS server, a clean JetStream (empty gouache streams) and an engine per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncEngine

from gouache.bus.consumer import DurableConsumer, Handler
from gouache.bus.jetstream import connect, ensure_streams
from gouache.bus.subjects import JOBS_CREATED
from gouache.db import create_engine
from tests.fixtures.nats import NatsServer, running_nats_server

# The stream and durable name start_consumer's consumers use (tiling's, on the jobs stream).
STREAM = "GOUACHE_JOBS"
DURABLE = "tiling"
ConsumerFactory = Callable[..., Awaitable[DurableConsumer]]


@pytest.fixture(scope="package")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """This package's own NATS server, apart from the session-wide one.

    These tests wipe streams and restart the server, which would break other suites
    sharing a server with them.
    """
    with running_nats_server(tmp_path_factory.mktemp("bus-nats")) as server:
        yield server


@pytest.fixture
async def nats_js(nats_server: NatsServer) -> AsyncIterator[tuple[NATS, JetStreamContext]]:
    """A connection to the package's NATS with freshly recreated, empty gouache streams."""
    nats_server.start()  # a test that stopped the server must not break the next one
    connection, js = await connect(nats_server.url, name="tests")
    for stream in await js.streams_info():
        await js.delete_stream(stream.config.name or "")
    await ensure_streams(js)
    try:
        yield connection, js
    finally:
        await connection.close()


@pytest.fixture
def js(nats_js: tuple[NATS, JetStreamContext]) -> JetStreamContext:
    return nats_js[1]


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(db_url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def start_consumer(js: JetStreamContext) -> AsyncIterator[ConsumerFactory]:
    """Start consumers on the jobs stream with quick test timings; stop them all after."""
    started: list[DurableConsumer] = []

    async def start(handler: Handler, **options: Any) -> DurableConsumer:
        settings: dict[str, Any] = {
            "stream": STREAM,
            "durable": DURABLE,
            "filter_subjects": [JOBS_CREATED],
            "ack_wait": 2.0,
            "retry_initial": 0.05,
            "retry_max": 0.2,
            "fetch_wait": 0.5,
            "drain_grace": 1.0,
        }
        settings.update(options)
        consumer = DurableConsumer(settings.pop("js", js), handler=handler, **settings)
        await consumer.start()
        started.append(consumer)
        return consumer

    yield start
    for consumer in started:
        await consumer.stop()
