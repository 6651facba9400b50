"""Projects in the SDK: their typed results and their calls, described once for both
transports (as gouache.client.operations does for the other calls).

A project groups images, styles, jobs, batches and webhooks; its members are owners
(manage members), editors (create, change, delete) or viewers (read only). Every user has a
personal project whose id is their own user id. A client acts in one project: the one its
`project=` names when it gets its token (none: the personal project).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gouache.client.operations import AUTH, Operation, _none, _paging
from gouache.client.types import Page, _time, _Wire, items_of

# The roles a member may have (the server checks; an unknown one is InvalidArgumentError).
PROJECT_ROLES = ("owner", "editor", "viewer")


@dataclass(frozen=True, eq=False)
class Project(_Wire):
    """A project as the caller sees it: their role in it, and whether it is their personal
    one (whose id is their user id)."""

    project_id: str
    name: str
    role: str
    personal: bool
    created_by: str
    created_at: datetime | None
    raw: Mapping[str, Any] = field(repr=False)
    # "free", "pro" or "enterprise" (a personal project's plan is its user's).
    plan: str = "free"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Project:
        return cls(
            project_id=str(data.get("project_id", "")),
            name=str(data.get("name", "")),
            role=str(data.get("role", "")),
            personal=bool(data.get("personal", False)),
            created_by=str(data.get("created_by", "")),
            created_at=_time(data.get("created_at")),
            raw=data,
            plan=str(data.get("plan") or "free"),
        )


@dataclass(frozen=True, eq=False)
class ProjectMember(_Wire):
    """A member of a project and their role."""

    user_id: str
    email: str
    role: str
    added_at: datetime | None
    added_by: str
    raw: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProjectMember:
        return cls(
            user_id=str(data.get("user_id", "")),
            email=str(data.get("email", "")),
            role=str(data.get("role", "")),
            added_at=_time(data.get("added_at")),
            added_by=str(data.get("added_by", "")),
            raw=data,
        )


@dataclass(frozen=True, eq=False)
class ProjectDetail(_Wire):
    """A project and its members (GetProject)."""

    project: Project
    members: tuple[ProjectMember, ...]
    raw: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProjectDetail:
        return cls(
            project=Project.from_json(data.get("project") or {}),
            members=tuple(ProjectMember.from_json(m) for m in items_of(data, "members")),
            raw=data,
        )


def create_project(name: str) -> Operation[Project]:
    """POST /v1/projects. Not repeatable: a retry after a lost answer would make two."""
    return Operation(
        AUTH,
        "CreateProject",
        "POST /v1/projects",
        {"name": name},
        lambda data: Project.from_json(data.get("project") or {}),
        repeatable=False,
    )


def list_projects(all_projects: bool, page_size: int, page_token: str) -> Operation[Page[Project]]:
    """GET /v1/projects: the caller's (personal first), or every shared one for an admin."""
    fields = _paging(page_size, page_token)
    if all_projects:
        fields["all"] = True

    def parse(data: Mapping[str, Any]) -> Page[Project]:
        return Page(
            items=tuple(Project.from_json(item) for item in items_of(data, "projects")),
            next_page_token=str(data.get("next_page_token", "")),
            raw=data,
        )

    return Operation(AUTH, "ListProjects", "GET /v1/projects", fields, parse)


def get_project(project_id: str) -> Operation[ProjectDetail]:
    return Operation(
        AUTH,
        "GetProject",
        "GET /v1/projects/{project_id}",
        {"project_id": project_id},
        ProjectDetail.from_json,
    )


def put_project_member(project_id: str, user_id: str, role: str) -> Operation[ProjectMember]:
    """PUT /v1/projects/{project_id}/members/{user_id}: add, or change the role (owners)."""
    return Operation(
        AUTH,
        "PutProjectMember",
        "PUT /v1/projects/{project_id}/members/{user_id}",
        {"project_id": project_id, "user_id": user_id, "role": role},
        lambda data: ProjectMember.from_json(data.get("member") or {}),
    )


def remove_project_member(project_id: str, user_id: str) -> Operation[None]:
    """DELETE /v1/projects/{project_id}/members/{user_id}: owners, or a member leaving."""
    return Operation(
        AUTH,
        "RemoveProjectMember",
        "DELETE /v1/projects/{project_id}/members/{user_id}",
        {"project_id": project_id, "user_id": user_id},
        _none,
    )
