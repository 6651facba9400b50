"""Reporting security-relevant actions to the audit log in auth (RecordAuditEvents).

Each report carries a fresh event id, so auth records it once however often the call is
retried. A report is made after the action succeeded and before the caller is answered; if
auth cannot be reached after a few tries it is logged as an error and the action stands
(the alternative, failing an action already done, would be worse). Services without
credentials for auth (tests, single processes) pass no reporter and report nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging

import grpc

from gouache.contracts.auth.v1 import auth_pb2, auth_pb2_grpc
from gouache.db import new_id
from gouache.runtime.clients import CallOptions
from gouache.runtime.context import Principal

logger = logging.getLogger(__name__)

_TRIES = 3
_RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def pseudonym(user_id: str) -> str:
    """How the audit log names a user once they are erased."""
    return "erased:" + hashlib.sha256(user_id.encode()).hexdigest()[:16]


class AuditReporter:
    """Sends one service's audit events to auth."""

    def __init__(self, channel: grpc.aio.Channel, calls: CallOptions) -> None:
        self._stub = auth_pb2_grpc.AuthServiceStub(channel)
        self._calls = calls

    async def report(
        self,
        actor: Principal,
        action: str,
        *,
        target: str = "",
        subject_id: str = "",
        detail: str = "",
    ) -> bool:
        """Records the action; False (logged) when auth could not be reached."""
        event = auth_pb2.AuditEvent(
            event_id=new_id("aud"),
            actor_id=actor.user_id,
            action=action,
            target=target,
            subject_id=subject_id,
            detail=detail,
        )
        event.at.GetCurrentTime()
        request = auth_pb2.RecordAuditEventsRequest(events=[event])
        for attempt in range(_TRIES):
            try:
                await self._stub.RecordAuditEvents(request, **await self._calls())
                return True
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in _RETRYABLE or attempt == _TRIES - 1:
                    logger.error(
                        "the audit log did not take an event",
                        extra={"action": action, "code": exc.code().name},
                    )
                    return False
                await asyncio.sleep(0.2 * 2**attempt)
        return False
