"""Usage reads (GetUsage, ExportUsage): who may read whose, the query, and its records.

Usage is per project (the owner of the jobs: a "prj_..." id, or a user's own id for their
personal project), per user (who created the jobs) and per model version. Admins and
services read anyone's; a project's owner, with a token acting in it, that project's; anyone
else the jobs they created themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gouache.runtime.context import Principal
from gouache.runtime.errors import InvalidArgument, PermissionDenied
from services.feedback.limits import MAX_ID_CHARS, validate_since

# GetUsage.group_by: the UTC calendar periods usage can be split by ("" for none).
GROUP_BY_PERIODS = ("day", "month")


@dataclass(frozen=True)
class UsageQuery:
    """Whose usage, over which window: None means every user (or project), or no bound."""

    user_id: str | None
    since: datetime | None
    until: datetime | None
    # "day", "month", or None for one record per project, user and version over the window.
    group_by: str | None = None
    # Only the jobs of this project (a user's own id: their personal project).
    project_id: str | None = None


@dataclass(frozen=True)
class UsageRecord:
    """What one user did in one project with one model version within a window."""

    user_id: str
    model_version: str
    jobs_succeeded: int
    jobs_failed: int
    # Of jobs_succeeded, those answered from the owner's result cache (no model ran).
    jobs_cached: int
    last_finished_at: datetime
    # Pixels of the results models made for the succeeded jobs, in millions.
    output_megapixels: float = 0.0
    # The workers' time on the succeeded jobs, and the part of it on a GPU, in ms.
    compute_ms: int = 0
    gpu_ms: int = 0
    # "2026-11" or "2026-11-30" when grouped by month or day; "" otherwise.
    period: str = ""
    # The project the jobs belong to (the user's own id for their personal project).
    project_id: str = ""


def _usage_id(value: str, field: str) -> str:
    wanted = value.strip()
    if len(wanted) > MAX_ID_CHARS:
        raise InvalidArgument(
            f"{field} must have at most {MAX_ID_CHARS} characters",
            field=field,
            reason=f"{field}_too_long",
        )
    return wanted


def _usage_scope(actor: Principal, user_id: str, project_id: str) -> tuple[str, str]:
    """The (user, project) filters a caller who is not an admin may read with.

    A project's usage (all its members'), as that project's owner, with a token acting in
    it; otherwise only the jobs the caller created. PERMISSION_DENIED, not an empty answer
    that would hide the mistake, when they name another project or user.
    """
    if project_id:
        if project_id != actor.project_id:
            raise PermissionDenied(
                f"your token acts in project {actor.project_id}, not {project_id}; only "
                "admins read any project's usage: its owner reads it with a token of that "
                "project (POST /v1/auth/token with project)",
                reason="usage_of_another_project",
            )
        if actor.project_role != "owner":
            raise PermissionDenied(
                f"reading project {project_id}'s usage needs its owner role, and yours is "
                f"{actor.project_role}; leave project_id empty to read your own usage",
                reason="usage_needs_project_owner",
            )
        return user_id, project_id
    if user_id and user_id != actor.user_id:
        raise PermissionDenied(
            f"only admins may read another user's usage; leave user_id empty (or set it to "
            f"your own, {actor.user_id}) to read yours, or set project_id to your token's "
            "project to read its members' as its owner",
            reason="usage_of_another_user",
        )
    return actor.user_id, ""


def usage_query(
    actor: Principal,
    *,
    user_id: str,
    since: datetime | None,
    until: datetime | None,
    now: datetime,
    group_by: str = "",
    project_id: str = "",
) -> UsageQuery:
    """The usage an actor may see: admins (and services) anyone's, one project's or one
    user's; a project's owner acting in it that project's; anyone else the jobs they
    created themselves (_usage_scope)."""
    wanted = _usage_id(user_id, "user_id")
    project = _usage_id(project_id, "project_id")
    if not (actor.is_admin or actor.is_service):
        wanted, project = _usage_scope(actor, wanted, project)
    start = None if since is None else validate_since(since, now)
    if until is not None and start is not None and until <= start:
        raise InvalidArgument(
            f"until {until.isoformat()} must be after since {start.isoformat()}",
            field="until",
            reason="until_before_since",
        )
    return UsageQuery(
        user_id=wanted or None,
        since=start,
        until=until,
        group_by=usage_period(group_by),
        project_id=project or None,
    )


def usage_period(group_by: str) -> str | None:
    """The period a usage query is split by, or None; INVALID_ARGUMENT naming the choices."""
    wanted = group_by.strip().lower()
    if wanted in ("", "none"):
        return None
    if wanted not in GROUP_BY_PERIODS:
        raise InvalidArgument(
            f"group_by must be {' or '.join(GROUP_BY_PERIODS)} (or empty for the whole "
            f"window), got {group_by!r}",
            field="group_by",
            reason="unknown_group_by",
        )
    return wanted
