"""A user's erasure (GDPR), coordinated by jobs: accepted at once, carried out by a background
runner and retried until done.

jobs coordinates because it already has what that takes: a database for the to-do row
(store/erasure.py) and channels to auth and storage. Steps, each idempotent, in an order
that stops new data first: (1) auth deletes the account and its API keys (no new tokens;
ones issued lapse within their lifetime), (2) the user's unfinished jobs are canceled (their
workers drop them), (3) storage removes every image of the user, results included, blob
before row (EraseOwner, in bounded calls until it says done), (4) feedback deletes ratings
and anonymises outcomes, (5) jobs deletes its own rows and marks the erasure done, in one
transaction. A failure anywhere leaves the row pending with the error and a later attempt
(doubling from `retry_s`) starts again from (1); a crash does the same, since the row is
all the state there is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import select

from gouache.db import utc_now
from gouache.runtime.context import Principal
from gouache.runtime.errors import InvalidArgument, PermissionDenied
from services.jobs.domain.jobs import JobStatus
from services.jobs.store import JobStore, jobs_table
from services.jobs.store.erasure import (
    Erasure,
    due_erasures,
    erase_own_rows,
    record_failure,
    request_erasure,
)

if TYPE_CHECKING:
    from services.jobs.app import JobsApp

logger = logging.getLogger(__name__)

_USER_ID = re.compile(r"[A-Za-z0-9_.:@-]{1,64}")
# Erasures taken per pass, and the longest wait between attempts of a failing one.
_BATCH = 10
_MAX_RETRY_S = 3600.0
# The principal the runner cancels jobs as.
_RUNNER = Principal(user_id="jobs-erasure", role="admin", scopes=frozenset({"admin:*"}))


class ErasureParticipants(Protocol):
    """The other services' shares of an erasure (clients.ErasureClients over gRPC)."""

    async def delete_account(self, user_id: str) -> None: ...

    async def erase_images(self, user_id: str) -> None: ...

    async def erase_feedback(self, user_id: str) -> None: ...


def check_user_id(principal: Principal, user_id: str) -> str:
    """The user to erase, if the caller may: the user themself or an admin."""
    user_id = user_id.strip()
    if not user_id:
        raise InvalidArgument("user_id is required: the user whose data to erase", field="user_id")
    if not _USER_ID.fullmatch(user_id):
        raise InvalidArgument(f"user_id {user_id!r} is not a valid user id", field="user_id")
    if user_id != principal.user_id and not principal.is_admin:
        raise PermissionDenied(
            "only the user themself or an admin may erase a user's data", field="user_id"
        )
    return user_id


class UserErasures:
    """EraseUser's use case and the runner that carries erasures out."""

    def __init__(
        self,
        app: JobsApp,
        store: JobStore,
        participants: ErasureParticipants,
        *,
        poll_interval_s: float = 30.0,
        retry_s: float = 5.0,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._app = app
        self._store = store
        self._participants = participants
        self._poll_s = poll_interval_s
        self._retry_s = retry_s
        self._now = now
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def request(self, principal: Principal, user_id: str) -> Erasure:
        user_id = check_user_id(principal, user_id)
        erasure = await request_erasure(self._store, user_id, self._now())
        logger.info("user erasure requested", extra={"by": principal.user_id})
        self._wake.set()
        return erasure

    async def run_due(self) -> int:
        """Attempts every due erasure once; returns how many finished."""
        done = 0
        for erasure in await due_erasures(self._store, self._now(), _BATCH):
            if erasure.user_id is None:
                continue
            try:
                await self.erase(erasure.user_id)
                done += 1
            except Exception as exc:
                delay = min(self._retry_s * 2 ** min(erasure.attempts, 20), _MAX_RETRY_S)
                await record_failure(
                    self._store,
                    erasure.subject_sha256,
                    f"{type(exc).__name__}: {exc}",
                    self._now() + timedelta(seconds=delay),
                )
                logger.warning(
                    "user erasure failed; it is retried",
                    extra={"attempts": erasure.attempts + 1, "retry_in_s": delay},
                    exc_info=True,
                )
        return done

    async def erase(self, user_id: str) -> None:
        await self._participants.delete_account(user_id)
        for job_id in await self._unfinished_jobs(user_id):
            await self._app.cancel_job(_RUNNER, job_id)
        await self._participants.erase_images(user_id)
        await self._participants.erase_feedback(user_id)
        await erase_own_rows(self._store, user_id, self._now())
        logger.info("user erased")

    async def _unfinished_jobs(self, user_id: str) -> list[str]:
        final = [status.value for status in JobStatus if status.is_final]
        query = select(jobs_table.c.job_id).where(
            jobs_table.c.owner_id == user_id, jobs_table.c.status.not_in(final)
        )
        async with self._store.reads() as session:
            return [row[0] for row in await session.execute(query)]

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="user-erasures")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.run_due()
            except Exception:
                logger.exception("the erasure runner failed; it tries again after its interval")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._poll_s)
