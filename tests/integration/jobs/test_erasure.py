"""A user's erasure as jobs coordinates it, with real JetStream and a real database (SQLite
and PostgreSQL): the other services' shares are called in order, a failing one leaves the
erasure pending with its error and a later attempt finishes it, and jobs' own tables end
up holding nothing of the user (the erasure row keeps only the id's sha256)."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from datetime import timedelta

import grpc
import pytest
from sqlalchemy import select

from gouache.contracts.jobs.v1 import jobs_pb2
from gouache.db import utc_now
from services.jobs.server import JobsService
from services.jobs.store import metadata
from services.jobs.store.erasure import due_erasures, get_erasure, subject_of
from tests.integration.jobs.conftest import Mesh, wait_until
from tests.integration.jobs.test_result_cache import Inputs, _create, _digests, _run
from tests.unit.jobs.helpers import expect_error

ALICE = "usr_alice"


@dataclass
class Participants:
    """The other services' shares, recorded; `failures` makes the next calls fail."""

    calls: list[tuple[str, str]] = field(default_factory=list)
    failures: int = 0

    async def _call(self, what: str, user_id: str) -> None:
        self.calls.append((what, user_id))
        if self.failures:
            self.failures -= 1
            raise RuntimeError(f"{what} is down")

    async def delete_account(self, user_id: str) -> None:
        await self._call("auth", user_id)

    async def erase_images(self, user_id: str) -> None:
        await self._call("storage", user_id)

    async def erase_feedback(self, user_id: str) -> None:
        await self._call("feedback", user_id)


@pytest.fixture
def participants(mesh: Mesh) -> Participants:
    """The mesh's jobs service with recorded participants instead of gRPC clients."""
    recorded = Participants()
    mesh.service.erasures._participants = recorded
    return recorded


async def _rows_naming(service: JobsService, needle: str) -> list[str]:
    found = []
    store = service.store
    async with store.reads() as session:
        for table in metadata.sorted_tables:
            for row in await session.execute(select(table)):
                for column, value in row._mapping.items():
                    text = value if isinstance(value, str) else str(value)
                    if isinstance(value, bytes):
                        text = value.decode(errors="replace")
                    if needle in text:
                        found.append(f"{table.name}.{column}")
    return found


async def test_an_erasure_retries_until_done_and_leaves_nothing(
    mesh: Mesh, participants: Participants
) -> None:
    service = mesh.service
    inputs = Inputs(mesh, ALICE, *_digests())
    first = await _create(mesh, inputs.request())
    await _run(mesh, first.job_id)
    assert (await _create(mesh, inputs.request())).cached
    await _create(mesh, Inputs(mesh, ALICE, *_digests()).request())  # left pending
    await mesh.stub.CreateWebhook(
        jobs_pb2.CreateWebhookRequest(
            url="http://127.0.0.1:9/hook", secret="s3cret-s3cret-s3cret", events=["job.failed"]
        ),
        metadata=mesh.auth(),
    )
    assert await _rows_naming(service, ALICE)

    participants.failures = 1  # auth is down for the first attempt
    reply = await mesh.stub.EraseUser(
        jobs_pb2.EraseUserRequest(user_id=ALICE), metadata=mesh.auth()
    )
    assert reply.status == "pending"

    async def attempted() -> bool:
        erasure = await get_erasure(service.store, ALICE)
        return erasure is not None and erasure.attempts == 1

    await wait_until(attempted, what="the first attempt, failed")
    await service.erasures.stop()  # the test drives the runner from here
    failed = await get_erasure(service.store, ALICE)
    assert failed is not None
    assert failed.status == "pending"
    assert failed.last_error == "RuntimeError: auth is down"
    assert failed.user_id == ALICE  # needed until the work is done
    # Not due again before its retry delay; due after it.
    assert await due_erasures(service.store, failed.requested_at, 10) == []
    later = await due_erasures(service.store, failed.requested_at + timedelta(hours=2), 10)
    assert [e.subject_sha256 for e in later] == [subject_of(ALICE)]

    participants.calls.clear()
    hours = itertools.count(2)  # every look at the clock is an hour later: always due
    service.erasures._now = lambda: utc_now() + timedelta(hours=next(hours))
    # The pending job's cancellation is published first (until then attempts are retried).
    for _ in range(100):
        if await service.erasures.run_due():
            break
        await asyncio.sleep(0.05)
    # Each attempt (one more if the cancellation was not yet published) calls them in order.
    steps = [("auth", ALICE), ("storage", ALICE), ("feedback", ALICE)]
    assert participants.calls == steps * (len(participants.calls) // 3)
    assert participants.calls
    admin = (("authorization", f"Bearer {mesh.signer.token('usr_root', role='admin')}"),)
    status = await mesh.stub.EraseUser(jobs_pb2.EraseUserRequest(user_id=ALICE), metadata=admin)
    assert status.status == "done"
    assert status.HasField("finished_at")
    assert await _rows_naming(service, ALICE) == []


async def test_who_may_erase_and_bad_ids(mesh: Mesh) -> None:
    await expect_error(
        mesh.stub.EraseUser(
            jobs_pb2.EraseUserRequest(user_id=ALICE), metadata=mesh.auth("usr_bob")
        ),
        grpc.StatusCode.PERMISSION_DENIED,
        contains=["only the user themself or an admin"],
    )
    await expect_error(
        mesh.stub.EraseUser(jobs_pb2.EraseUserRequest(user_id=""), metadata=mesh.auth()),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="user_id",
    )
    admin = (("authorization", f"Bearer {mesh.signer.token('usr_root', role='admin')}"),)
    await expect_error(
        mesh.stub.EraseUser(jobs_pb2.EraseUserRequest(user_id="usr/../x"), metadata=admin),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="user_id",
    )
