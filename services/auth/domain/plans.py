"""Plans of users and shared projects: which ones exist, and the admin calls that set them.

A plan ("free", "pro", "enterprise") decides a caller's rate limits, monthly compute quota
and retention; the services read it from the token's `plan` claim. Auth keeps a plan on
each user (their personal project's plan) and on each shared project, and puts the acting
project's plan into every token it issues (Accounts.token_for). A change reaches tokens
at their next issue: a token already issued keeps its plan until it expires (the token
lifetime, 15 minutes by default).

The names come from one place, gouache.priority.TIERS, which the priority classes and the
jobs quota settings check against.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from gouache.priority import TIERS
from gouache.runtime.context import DEFAULT_PLAN, Principal
from gouache.runtime.errors import InvalidArgument, NotFound, PermissionDenied
from services.auth.domain.projects import is_personal, validate_project_id, validate_user_id

logger = logging.getLogger(__name__)

PLANS = TIERS
"""The known plans, highest first (gouache.priority.TIERS: one source for the names)."""


def validate_plan(plan: str, *, empty: str | None = None) -> str:
    """A known plan name (trimmed, case-insensitive); an empty one is `empty` when given,
    else INVALID_ARGUMENT, as is an unknown one (the message names the known plans)."""
    value = plan.strip().lower()
    if not value and empty is not None:
        return empty
    if value not in PLANS:
        shown = f"{plan[:40]!r}" if value else "nothing"
        raise InvalidArgument(
            f"plan must be one of {', '.join(PLANS)}, got {shown}",
            field="plan",
            reason="plan_unknown" if value else "plan_missing",
        )
    return value


def validate_new_plan(plan: str) -> str:
    """The plan of a new user: the default plan when empty, else a known one."""
    return validate_plan(plan, empty=DEFAULT_PLAN)


@dataclass(frozen=True)
class PlanChange:
    """What a set-plan call did: the subject (a user or a shared project), the plan now and
    the plan before (equal when nothing changed)."""

    subject: str
    plan: str
    previous_plan: str
    kind: str  # "user" or "project"

    @property
    def changed(self) -> bool:
        return self.plan != self.previous_plan


class PlanStore(Protocol):
    """What setting plans needs from the database (store.AuthDatabase)."""

    async def set_user_plan(self, user_id: str, plan: str) -> str | None:
        """Sets the user's plan; the plan before, or None when there is no such user."""
        ...

    async def set_project_plan(self, project_id: str, plan: str) -> str | None:
        """Sets the shared project's plan; the plan before, or None without the project."""
        ...


def _require_admin(actor: Principal) -> None:
    # The method policy already admits only admins; this keeps the rule where it is used.
    if not actor.is_admin:
        raise PermissionDenied("only admins may change plans", reason="not_admin")


class Plans:
    """The admin calls that put a user or a shared project on a plan."""

    def __init__(self, store: PlanStore) -> None:
        self._store = store

    async def set_user_plan(self, actor: Principal, user_id: str, plan: str) -> PlanChange:
        """Puts user_id on plan (admins only); an unknown user is NOT_FOUND."""
        _require_admin(actor)
        user_id = validate_user_id(user_id)
        plan = validate_plan(plan)
        previous = await self._store.set_user_plan(user_id, plan)
        if previous is None:
            raise NotFound(f"user {user_id} does not exist", reason="user_not_found")
        logger.info("user plan set", extra={"user_id": user_id, "plan": plan, "was": previous})
        return PlanChange(subject=user_id, plan=plan, previous_plan=previous, kind="user")

    async def set_project_plan(self, actor: Principal, project_id: str, plan: str) -> PlanChange:
        """Puts a shared project on plan (admins only); a personal project's id (a user
        id) sets that user's plan; an unknown project is NOT_FOUND."""
        _require_admin(actor)
        project_id = validate_project_id(project_id)
        plan = validate_plan(plan)
        if is_personal(project_id):
            return await self.set_user_plan(actor, project_id, plan)
        previous = await self._store.set_project_plan(project_id, plan)
        if previous is None:
            raise NotFound(f"no project {project_id}", reason="project_not_found")
        logger.info(
            "project plan set", extra={"project_id": project_id, "plan": plan, "was": previous}
        )
        return PlanChange(subject=project_id, plan=plan, previous_plan=previous, kind="project")
