"""Deletion, erasure and the audit log in the SDK: their typed results and their calls,
described once for both transports (as gouache.client.operations does for the other calls).

- DELETE /v1/images/{image_id} (StorageService.DeleteImage): one content or style image
  with its bytes; a result image goes with its job.
- DELETE /v1/jobs/{job_id} (JobsService.DeleteJob): a job with its result, its webhook
  deliveries and any result-cache entry handing out that result (canceled first if running).
- POST /v1/users/{user_id}:erase (JobsService.EraseUser): everything of a user (GDPR), for
  the user themself or an admin; carried out in the background, and calling again reports
  where it stands.
- GET /v1/audit (AuthService.ListAuditEvents): the append-only audit log, newest first, for
  admins.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gouache.client.operations import AUTH, JOBS, STORAGE, Operation, _paging, rfc3339
from gouache.client.types import Page, _time, _Wire, items_of

# ListAuditEvents' page size bounds (0 asks for the server's default, 50).
MAX_AUDIT_PAGE = 100


@dataclass(frozen=True, eq=False)
class Erasure(_Wire):
    """Where the erasure of a user's data stands (EraseUser)."""

    user_id: str
    # "pending" (accepted, in progress or being retried) or "done".
    status: str
    requested_at: datetime | None
    finished_at: datetime | None
    # Why the last attempt failed, while it is being retried ("" otherwise).
    last_error: str
    raw: Mapping[str, Any] = field(repr=False)

    @property
    def done(self) -> bool:
        return self.status == "done"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Erasure:
        return cls(
            user_id=str(data.get("user_id", "")),
            status=str(data.get("status", "")),
            requested_at=_time(data.get("requested_at")),
            finished_at=_time(data.get("finished_at")),
            last_error=str(data.get("last_error", "")),
            raw=data,
        )


@dataclass(frozen=True, eq=False)
class AuditEvent(_Wire):
    """One entry of the audit log: who did what to which resource, when."""

    event_id: str
    at: datetime | None
    # A user id, or a service account's.
    actor_id: str
    # e.g. "api_key.created", "image.deleted", "job.deleted", "user.erasure_requested".
    action: str
    # "<kind>:<id>", e.g. "job:job_...".
    target: str
    # The user whose data or account it concerns (pseudonymised once that user is erased).
    subject_id: str
    # The service that recorded it.
    service: str
    detail: str
    raw: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AuditEvent:
        return cls(
            event_id=str(data.get("event_id", "")),
            at=_time(data.get("at")),
            actor_id=str(data.get("actor_id", "")),
            action=str(data.get("action", "")),
            target=str(data.get("target", "")),
            subject_id=str(data.get("subject_id", "")),
            service=str(data.get("service", "")),
            detail=str(data.get("detail", "")),
            raw=data,
        )


def _required(name: str, value: str) -> str:
    """An id that goes into the path: an empty one would name a different route."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} is required: the id as the API returned it, got {value!r}")
    return value


def _deleted(key: str) -> Callable[[Mapping[str, Any]], str]:
    def parse(data: Mapping[str, Any]) -> str:
        return str(data.get(key, ""))

    return parse


def delete_image(image_id: str) -> Operation[str]:
    """DELETE /v1/images/{image_id}; the result is the deleted image's id."""
    return Operation(
        STORAGE,
        "DeleteImage",
        "DELETE /v1/images/{image_id}",
        {"image_id": _required("image_id", image_id)},
        _deleted("image_id"),
    )


def delete_job(job_id: str) -> Operation[str]:
    """DELETE /v1/jobs/{job_id}; the result is the deleted job's id."""
    return Operation(
        JOBS,
        "DeleteJob",
        "DELETE /v1/jobs/{job_id}",
        {"job_id": _required("job_id", job_id)},
        _deleted("job_id"),
    )


def erase_user(user_id: str) -> Operation[Erasure]:
    """POST /v1/users/{user_id}:erase: repeatable, as asking again reports the same erasure."""
    return Operation(
        JOBS,
        "EraseUser",
        "POST /v1/users/{user_id}:erase",
        {"user_id": _required("user_id", user_id)},
        Erasure.from_json,
    )


def list_audit_events(
    since: datetime | None, actor_id: str, action: str, page_size: int, page_token: str
) -> Operation[Page[AuditEvent]]:
    """GET /v1/audit: one page of the log, newest first, at or after since, of one actor
    and one action when given."""
    if not 0 <= page_size <= MAX_AUDIT_PAGE:
        raise ValueError(f"page_size must be within 1-{MAX_AUDIT_PAGE} (0: 50), got {page_size}")
    fields = _paging(page_size, page_token)
    if since is not None:
        fields["since"] = rfc3339(since)
    if actor_id:
        fields["actor_id"] = actor_id
    if action:
        fields["action"] = action

    def parse(data: Mapping[str, Any]) -> Page[AuditEvent]:
        return Page(
            items=tuple(AuditEvent.from_json(item) for item in items_of(data, "events")),
            next_page_token=str(data.get("next_page_token", "")),
            raw=data,
        )

    return Operation(AUTH, "ListAuditEvents", "GET /v1/audit", fields, parse)
