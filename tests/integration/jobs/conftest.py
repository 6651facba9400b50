"""The whole jobs service from build(): real NATS JetStream, SQLite or PostgreSQL, port 0."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import grpc
import pytest
from google.protobuf.message import DecodeError, Message
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from pydantic import SecretStr

from gouache.bus import subjects
from gouache.bus.jetstream import connect, publish
from gouache.contracts.events.v1 import events_pb2
from gouache.contracts.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from gouache.runtime.auth import TokenVerifier
from gouache.runtime.server import RunningService, start_service
from gouache.secretbox import generate_key
from services.jobs.server import JobsService, build
from services.jobs.settings import JobsSettings
from tests.fixtures.nats import NatsServer
from tests.helpers.tokens import TestSigner
from tests.unit.jobs.helpers import InMemoryImages


@dataclass
class Mesh:
    """A running jobs service, a client, and a JetStream connection to inspect and feed."""

    service: JobsService
    running: RunningService
    stub: jobs_pb2_grpc.JobsServiceStub
    signer: TestSigner
    images: InMemoryImages
    js: JetStreamContext

    def auth(self, user: str = "usr_alice") -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.signer.token(user)}"),)

    def job_request(self, user: str = "usr_alice", **fields: object) -> jobs_pb2.CreateJobRequest:
        return jobs_pb2.CreateJobRequest(
            content_url=self.images.add(user),
            style_urls=[self.images.add(None)],
            **fields,  # type: ignore[arg-type]
        )

    async def get(self, job_id: str) -> jobs_pb2.Job:
        response = await self.stub.GetJob(
            jobs_pb2.GetJobRequest(job_id=job_id), metadata=self.auth(), timeout=10
        )
        job: jobs_pb2.Job = response
        return job

    async def cancel(self, job_id: str) -> jobs_pb2.Job:
        response = await self.stub.CancelJob(
            jobs_pb2.CancelJobRequest(job_id=job_id), metadata=self.auth(), timeout=10
        )
        job: jobs_pb2.Job = response
        return job

    async def execution(
        self,
        subject: str,
        message: events_pb2.ExecutionProgress
        | events_pb2.ExecutionSucceeded
        | events_pb2.ExecutionFailed,
    ) -> None:
        """Publishes an execution event as a tiling worker would."""
        await publish(self.js, subject, message, event_id=message.event_id)

    async def job_events(self, subject: str, job_id: str) -> list[Message]:
        """Every event on subject about job_id that the jobs stream holds."""
        info = await self.js.stream_info(subjects.JOBS_STREAM.name)
        found: list[Message] = []
        if info.state.messages == 0:
            return found
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            raw = await self.js.get_msg(subjects.JOBS_STREAM.name, seq)
            if raw.subject != subject:
                continue
            try:
                message = subjects.MESSAGE_TYPES[subject].FromString(raw.data or b"")
            except DecodeError:
                continue  # other suites share the server and publish malformed events on purpose
            if getattr(message, "job_id", None) == job_id:
                found.append(message)
        return found

    async def published(self, subject: str, job_id: str, count: int = 1) -> list[Message]:
        """The events on subject about job_id once there are `count`: the outbox relay
        publishes them after the job's transaction commits, so a read of the job can see
        its new state before the stream holds the event."""
        found: list[Message] = []

        async def enough() -> bool:
            found[:] = await self.job_events(subject, job_id)
            return len(found) >= count

        await wait_until(enough, what=f"{count} {subject} for {job_id}")
        return found


async def wait_until(
    condition: Callable[[], Awaitable[bool]], *, within: float = 10.0, what: str = ""
) -> None:
    """Polls condition every 20 ms until it holds; fails after `within` seconds."""
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {within}s: {what}")
        await asyncio.sleep(0.02)


# The webhook-secret key of every replica these tests start (they share one database).
SECRETS_KEY = SecretStr(generate_key())


@pytest.fixture
async def mesh(db_url: str, nats_server: NatsServer) -> AsyncIterator[Mesh]:
    signer = TestSigner()
    images = InMemoryImages()
    settings = JobsSettings(
        port=0,
        database_url=db_url,
        nats_url=nats_server.url,
        watch_poll_interval_s=0.2,
        webhook_backoff_s=0.2,
        webhook_poll_interval_s=0.05,
        webhook_timeout_s=2.0,
        allow_private_webhook_urls=True,
        secrets_key=SECRETS_KEY,
    )
    service = await build(
        settings, verifier=TokenVerifier(signer.fetch), images=images, downloads=images
    )
    running = await start_service(settings, service.spec, service.verifier)
    connection: NATS
    connection, js = await connect(nats_server.url, name="jobs-tests")
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        yield Mesh(
            service=service,
            running=running,
            stub=jobs_pb2_grpc.JobsServiceStub(channel),
            signer=signer,
            images=images,
            js=js,
        )
    finally:
        await channel.close()
        await connection.close()
        await running.stop(0)
