"""Plans in the SDK (admins only): put a user or a shared project on a plan, described once
for both transports (as gouache.client.operations does for the other calls).

A plan ("free", "pro", "enterprise") decides rate limits, the monthly compute quota and
retention. Tokens carry the plan of the project they act in from their next issue, so a
change reaches a client when it next gets a token (at most one token lifetime, 15 minutes
by default, later).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gouache.client.operations import AUTH, Operation
from gouache.client.types import _Wire
from gouache.priority import TIERS

PLANS = TIERS
"""The plans the server knows (it checks; an unknown one is InvalidArgumentError)."""


@dataclass(frozen=True, eq=False)
class PlanChange(_Wire):
    """What setting a plan did: the user's or project's id, the plan now and before."""

    subject_id: str
    plan: str
    previous_plan: str
    raw: Mapping[str, Any] = field(repr=False)

    @property
    def changed(self) -> bool:
        return self.plan != self.previous_plan

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PlanChange:
        return cls(
            subject_id=str(data.get("user_id") or data.get("project_id") or ""),
            plan=str(data.get("plan", "")),
            previous_plan=str(data.get("previous_plan", "")),
            raw=data,
        )


def _required(name: str, value: str) -> str:
    if not value.strip():
        raise ValueError(f"{name} is required: the id as the API returned it, got {value!r}")
    return value.strip()


def set_user_plan(user_id: str, plan: str) -> Operation[PlanChange]:
    """PUT /v1/users/{user_id}/plan (admins). Repeatable: setting it again changes nothing."""
    return Operation(
        AUTH,
        "SetUserPlan",
        "PUT /v1/users/{user_id}/plan",
        {"user_id": _required("user_id", user_id), "plan": plan},
        PlanChange.from_json,
    )


def set_project_plan(project_id: str, plan: str) -> Operation[PlanChange]:
    """PUT /v1/projects/{project_id}/plan (admins); a personal project's id (a user id)
    sets that user's plan."""
    return Operation(
        AUTH,
        "SetProjectPlan",
        "PUT /v1/projects/{project_id}/plan",
        {"project_id": _required("project_id", project_id), "plan": plan},
        PlanChange.from_json,
    )
