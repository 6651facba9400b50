"""Event subjects, the message type on each subject, and the JetStream streams holding them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from google.protobuf.message import Message

from gouache import priority
from gouache.contracts.events.v1 import events_pb2

JOBS_CREATED = "gouache.jobs.created"
JOBS_CANCELED = "gouache.jobs.canceled"
JOBS_SUCCEEDED = "gouache.jobs.succeeded"
JOBS_FAILED = "gouache.jobs.failed"
JOBS_BATCH_FINISHED = "gouache.jobs.batch_finished"
EXECUTION_PROGRESS = "gouache.execution.progress"
EXECUTION_SUCCEEDED = "gouache.execution.succeeded"
EXECUTION_FAILED = "gouache.execution.failed"
DEAD_LETTER_PREFIX = "gouache.dlq."
"""Dead letters of a message on subject S go to gouache.dlq.S (see gouache.bus.deadletter)."""


def job_created_subject(lane: str, tier: str) -> str:
    """gouache.jobs.created.<lane>.<tier>: where a JobCreated of that priority class goes.

    Workers consume each class (gouache.priority.CLASSES) with its own durable consumer
    and run the waiting jobs of the highest class first, so a flood in one class never
    hides another's jobs behind it in one queue. The bare gouache.jobs.created (events
    of earlier releases) is served as export/free.
    """
    priority.rank(lane, tier)  # raises ValueError for an unknown class
    return f"{JOBS_CREATED}.{lane}.{tier}"


MESSAGE_TYPES: Mapping[str, type[Message]] = MappingProxyType(
    {
        JOBS_CREATED: events_pb2.JobCreated,
        **{
            job_created_subject(lane, tier): events_pb2.JobCreated
            for lane, tier in priority.CLASSES
        },
        JOBS_CANCELED: events_pb2.JobCanceled,
        JOBS_SUCCEEDED: events_pb2.JobSucceeded,
        JOBS_FAILED: events_pb2.JobFailed,
        JOBS_BATCH_FINISHED: events_pb2.BatchFinished,
        EXECUTION_PROGRESS: events_pb2.ExecutionProgress,
        EXECUTION_SUCCEEDED: events_pb2.ExecutionSucceeded,
        EXECUTION_FAILED: events_pb2.ExecutionFailed,
    }
)
"""The protobuf message published on each subject (events.proto), for decoding."""

DUPLICATE_WINDOW_S = 600.0
"""How long JetStream remembers a Nats-Msg-Id: a republish within it is dropped."""

MAX_AGE_S = 7 * 24 * 3600.0
"""How long a stream keeps events, for consumers that were down and for replays."""


@dataclass(frozen=True)
class StreamSpec:
    """What a JetStream stream must look like; jetstream.ensure_streams applies it."""

    name: str
    subjects: tuple[str, ...]
    file_storage: bool = True
    duplicate_window_s: float = DUPLICATE_WINDOW_S
    max_age_s: float = MAX_AGE_S


JOBS_STREAM = StreamSpec(name="GOUACHE_JOBS", subjects=("gouache.jobs.>",))
EXECUTION_STREAM = StreamSpec(name="GOUACHE_EXECUTION", subjects=("gouache.execution.>",))
DLQ_MAX_AGE_S = 14 * 24 * 3600.0
"""Dead letters are kept twice as long as events, so there is time to look at and replay them."""

DLQ_STREAM = StreamSpec(
    name="GOUACHE_DLQ", subjects=(f"{DEAD_LETTER_PREFIX}>",), max_age_s=DLQ_MAX_AGE_S
)
STREAMS: tuple[StreamSpec, ...] = (JOBS_STREAM, EXECUTION_STREAM, DLQ_STREAM)
