"""Dead letters: messages a durable consumer gave up on, kept in their own stream with why.

A message that can never be handled (undecodable, or its handler raises
PermanentEventError) or that failed on every one of its deliveries is copied, payload
unchanged, to ``gouache.dlq.<original subject>`` in the DLQ stream, with headers naming
where it came from and the last error; only then is the original terminated. The jobs
service consumes the DLQ stream and fails the job a dead letter names (see
``describe``), so a poison message never leaves a job pending forever.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType

from google.protobuf.message import Message
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import PubAck
from prometheus_client import Counter

from gouache.bus.jetstream import HEADER_MSG_ID, NATS_ERRORS, PublishError
from gouache.bus.subjects import DEAD_LETTER_PREFIX, DLQ_STREAM, MESSAGE_TYPES

HEADER_SUBJECT = "Gouache-Dlq-Subject"
HEADER_STREAM = "Gouache-Dlq-Stream"
HEADER_SEQUENCE = "Gouache-Dlq-Sequence"
HEADER_CONSUMER = "Gouache-Dlq-Consumer"
HEADER_DELIVERIES = "Gouache-Dlq-Deliveries"
HEADER_ERROR = "Gouache-Dlq-Error"
HEADER_EVENT_ID = "Gouache-Dlq-Event-Id"
HEADER_JOB_ID = "Gouache-Dlq-Job-Id"
HEADER_AT = "Gouache-Dlq-At"

MAX_ID_CHARS = 64
"""Event ids are stored in 64-character columns (processed_events)."""

MAX_ERROR_CHARS = 1000
"""Longer errors are cut (the full one is in the consumer's log)."""

DEAD_LETTERS = Counter(
    "gouache_dead_letters_total",
    "Messages a durable consumer gave up on and moved to the DLQ stream (undecodable, "
    "refused as permanent, or failed on every delivery).",
    ["stream", "consumer"],
)


def dead_letter_subject(subject: str) -> str:
    """The DLQ subject of a message first published on subject."""
    return f"{DEAD_LETTER_PREFIX}{subject}"


DEAD_LETTER_TYPES: Mapping[str, type[Message]] = MappingProxyType(
    {dead_letter_subject(subject): kind for subject, kind in MESSAGE_TYPES.items()}
)
"""The protobuf message on each DLQ subject: that of the original subject."""


_UNPRINTABLE = re.compile(r"[^\x20-\x7e]+")


def header_value(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """Text fit for a NATS header: one printable ASCII line, at most limit characters."""
    line = _UNPRINTABLE.sub(" ", text).strip()
    return line if len(line) <= limit else line[: limit - 3] + "..."


@dataclass(frozen=True)
class DeadLetter:
    """Why and from where a message was dead-lettered; the headers of its DLQ copy."""

    subject: str
    stream: str
    stream_sequence: int
    consumer: str
    deliveries: int
    error: str
    event_id: str = ""
    job_id: str = ""

    @property
    def message_id(self) -> str:
        """The dead letter's event id: dlq-<stream>-<sequence>-<consumer>, hashed past 64."""
        plain = f"dlq-{self.stream}-{self.stream_sequence}-{self.consumer}"
        if len(plain) <= MAX_ID_CHARS:
            return plain
        return "dlq-" + hashlib.sha256(plain.encode()).hexdigest()[:40]

    def headers(self, original: Mapping[str, str], at: datetime) -> dict[str, str]:
        """The original headers (except NATS' own) plus the dead-letter ones."""
        headers = {name: value for name, value in original.items() if not name.startswith("Nats-")}
        headers.update(
            {
                # One dead letter per (stream, sequence, consumer): a retried dead-lettering
                # (its term was lost) is dropped by JetStream as a duplicate.
                HEADER_MSG_ID: self.message_id,
                HEADER_SUBJECT: self.subject,
                HEADER_STREAM: self.stream,
                HEADER_SEQUENCE: str(self.stream_sequence),
                HEADER_CONSUMER: self.consumer,
                HEADER_DELIVERIES: str(self.deliveries),
                HEADER_ERROR: header_value(self.error) or "unknown error",
                HEADER_AT: at.astimezone(UTC).isoformat(timespec="milliseconds"),
            }
        )
        if self.event_id:
            headers[HEADER_EVENT_ID] = header_value(self.event_id, 200)
        if self.job_id:
            headers[HEADER_JOB_ID] = header_value(self.job_id, 200)
        return headers

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> DeadLetter:
        """Read back what headers() wrote (missing values are empty or zero)."""

        def number(name: str) -> int:
            value = headers.get(name, "")
            return int(value) if value.isdigit() else 0

        return cls(
            subject=headers.get(HEADER_SUBJECT, ""),
            stream=headers.get(HEADER_STREAM, ""),
            stream_sequence=number(HEADER_SEQUENCE),
            consumer=headers.get(HEADER_CONSUMER, ""),
            deliveries=number(HEADER_DELIVERIES),
            error=headers.get(HEADER_ERROR, ""),
            event_id=headers.get(HEADER_EVENT_ID, ""),
            job_id=headers.get(HEADER_JOB_ID, ""),
        )

    def describe(self, dlq_sequence: int | None = None) -> str:
        """A sentence an operator can act on: what failed, how often, and where it is kept."""
        where = f"stream {DLQ_STREAM.name}"
        if dlq_sequence is not None:
            where += f", sequence {dlq_sequence}"
        times = "once" if self.deliveries == 1 else f"{self.deliveries} times"
        return (
            f"processing of {self.subject} (stream {self.stream}, sequence "
            f"{self.stream_sequence}) by consumer {self.consumer} failed {times}: "
            f"{self.error or 'unknown error'}; the message is in dead-letter subject "
            f"{dead_letter_subject(self.subject)} ({where})"
        )


def job_id_of(message: Message | None) -> str:
    """The job a decoded event is about, when its type has a job_id field."""
    if message is None or "job_id" not in message.DESCRIPTOR.fields_by_name:
        return ""
    return str(getattr(message, "job_id", ""))


async def publish_dead_letter(
    js: JetStreamContext, msg: Msg, letter: DeadLetter, *, ack_timeout: float = 5.0
) -> PubAck:
    """Store a copy of msg in the DLQ stream and count it; PublishError if not stored.

    Counted once JetStream has it; a duplicate (a retried dead-lettering) is not counted.
    """
    subject = dead_letter_subject(letter.subject)
    headers = letter.headers(msg.headers or {}, datetime.now(UTC))
    try:
        ack = await js.publish(
            subject,
            msg.data,
            timeout=ack_timeout,
            stream=DLQ_STREAM.name,
            headers=headers,
        )
    except NATS_ERRORS as exc:
        raise PublishError(subject, headers[HEADER_MSG_ID], exc) from exc
    if not ack.duplicate:
        DEAD_LETTERS.labels(stream=letter.stream, consumer=letter.consumer).inc()
    return ack
