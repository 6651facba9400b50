"""Waiting on conditions with a deadline, and reading what a stream holds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg

from gouache.contracts.events.v1 import events_pb2


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]], *, within: float = 10.0, what: str = ""
) -> None:
    """Poll condition every 20 ms until it holds; fail the test after within seconds."""
    deadline = time.monotonic() + within
    while True:
        outcome = condition()
        if outcome if isinstance(outcome, bool) else await outcome:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {within}s: {what or condition}")
        await asyncio.sleep(0.02)


async def stream_messages(js: JetStreamContext, stream: str) -> list[RawStreamMsg]:
    """Return every message stored in a stream, in stream order."""
    info = await js.stream_info(stream)
    first, last = info.state.first_seq, info.state.last_seq
    if info.state.messages == 0:
        return []
    return [await js.get_msg(stream, seq) for seq in range(first, last + 1)]


def job_created(event_id: str, job_id: str = "job_1") -> events_pb2.JobCreated:
    """A JobCreated event as the jobs service would publish it."""
    return events_pb2.JobCreated(
        event_id=event_id,
        job_id=job_id,
        owner_id="usr_1",
        content_image_id="img_1",
        style_image_ids=["img_2"],
        model_version="adain-v1",
    )
