"""Projects and their members: the rules, the use cases and the store they need.

A shared project has an id `prj_<ULID>` and members with a role (owner, editor, viewer);
every user also has a personal project whose id is the user's own id: it exists without a
row, its only member is the user (owner), and it takes no other members. A token names the
project it acts in (claims `project` and `project_role`); a viewer's token holds no
`write:*` scope, so the services' scope policies refuse a viewer's writes.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from gouache.runtime.context import DEFAULT_PLAN, PROJECT_ROLES, Principal
from gouache.runtime.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from services.auth.domain.rules import validate_label

logger = logging.getLogger(__name__)

OWNER, EDITOR, VIEWER = PROJECT_ROLES
PROJECT_PREFIX = "prj_"
MAX_PROJECT_NAME_CHARS = 100
# What the personal project is called in listings (it has no stored name).
PERSONAL_NAME = "Personal"
# Bounds GetProject's answer and the work one project causes.
MAX_MEMBERS = 1000
DEFAULT_PAGE = 50
MAX_PAGE = 100
WRITE_SCOPE_PREFIX = "write:"
_PROJECT_ID = re.compile(r"prj_[0-9A-HJKMNP-TV-Z]{26}")
# A user id as auth makes them (usr_<ULID>); older or test ids are letters, digits, '_', '-'.
_USER_ID = re.compile(r"[A-Za-z0-9_-]{1,40}")


@dataclass(frozen=True)
class Project:
    """A shared project as stored."""

    project_id: str
    name: str
    created_by: str
    created_at: datetime
    # The project's plan (services/auth/domain/plans.py); tokens acting in it carry it.
    plan: str = DEFAULT_PLAN


@dataclass(frozen=True)
class Member:
    """A user's role in a shared project; email is filled in when read."""

    project_id: str
    user_id: str
    role: str
    added_at: datetime
    added_by: str
    email: str = ""


@dataclass(frozen=True)
class ProjectView:
    """A project as one caller sees it: their role, and whether it is their personal one."""

    project: Project
    role: str
    personal: bool = False


@dataclass(frozen=True)
class ProjectDetail:
    """A project as one caller sees it, with its members."""

    view: ProjectView
    members: tuple[Member, ...]


@dataclass(frozen=True)
class TokenProject:
    """The shared project a token acts in, the user's role there and its plan (claims)."""

    project: str
    role: str
    plan: str = DEFAULT_PLAN


@dataclass(frozen=True)
class MemberChange:
    """What PutProjectMember did: the member now, and the role before ("" when added)."""

    member: Member
    previous_role: str


MemberCheck = Callable[[Sequence[Member]], None]


class MembershipReader(Protocol):
    """What issuing a token needs to know about projects."""

    async def project(self, project_id: str) -> Project | None: ...

    async def member(self, project_id: str, user_id: str) -> Member | None: ...


class ProjectStore(MembershipReader, Protocol):
    """What the project use cases need from the database (store.AuthDatabase)."""

    async def add_project(self, project: Project, owner: Member) -> None:
        """Inserts a project and its first owner in one transaction."""

    async def members(self, project_id: str) -> list[Member]:
        """The project's members with their emails, by the time they were added."""
        ...

    async def projects_of(
        self, user_id: str, *, after: str, limit: int
    ) -> list[tuple[Project, str]]:
        """The user's shared projects and role, by id, after `after`."""
        ...

    async def all_projects(self, *, after: str, limit: int) -> list[Project]: ...

    async def user_brief(self, user_id: str) -> tuple[str, datetime, str] | None:
        """The user's email, creation time and plan, or None when there is no such user."""
        ...

    async def put_member(self, member: Member, check: MemberCheck) -> MemberChange:
        """Adds the member or changes their role, after check(members) passed with the
        project's members read in the same transaction (the project row locked)."""
        ...

    async def remove_member(self, project_id: str, user_id: str, check: MemberCheck) -> bool:
        """Removes the member after check(members) passed, as put_member; False when the
        user was not a member."""
        ...


def validate_project_name(name: str) -> str:
    """A project's name: 1-100 printable characters, trimmed."""
    value = validate_label(name, field_name="name", max_chars=MAX_PROJECT_NAME_CHARS)
    if not value:
        raise InvalidArgument(
            "name is required: a name for the project, e.g. 'Marketing'",
            field="name",
            reason="name_missing",
        )
    return value


def validate_project_role(role: str) -> str:
    """A member's role: owner, editor or viewer (case-insensitive)."""
    value = role.strip().lower()
    if value not in PROJECT_ROLES:
        raise InvalidArgument(
            f"role must be one of {', '.join(PROJECT_ROLES)}, got {role!r}",
            field="role",
            reason="project_role_invalid",
        )
    return value


def validate_project_id(project_id: str, *, field_name: str = "project_id") -> str:
    """A project id: "prj_" and 26 Crockford base32 characters, or a user id (a personal
    project). INVALID_ARGUMENT otherwise."""
    value = project_id.strip()
    if not value:
        raise InvalidArgument(
            f"{field_name} is required: a project's id (prj_...) or your own user id",
            field=field_name,
            reason="project_id_missing",
        )
    if value.startswith(PROJECT_PREFIX):
        if not _PROJECT_ID.fullmatch(value):
            raise InvalidArgument(
                f"{field_name} {value!r} is not a project id: expected prj_ and 26 characters "
                "(digits and capital letters), as CreateProject returned",
                field=field_name,
                reason="project_id_invalid",
            )
    elif not _USER_ID.fullmatch(value):
        raise InvalidArgument(
            f"{field_name} {value[:60]!r} is neither a project id (prj_...) nor a user id "
            "(a personal project)",
            field=field_name,
            reason="project_id_invalid",
        )
    return value


def validate_user_id(user_id: str) -> str:
    """A member's user id: letters, digits, '_' and '-' (usr_... as auth makes them)."""
    value = user_id.strip()
    if not _USER_ID.fullmatch(value):
        raise InvalidArgument(
            f"user_id {value[:60]!r} is not a user id (usr_..., as CreateUser and WhoAmI return)",
            field="user_id",
            reason="user_id_invalid",
        )
    return value


def is_personal(project_id: str) -> bool:
    return not project_id.startswith(PROJECT_PREFIX)


def project_scopes(
    role: str, granted: Sequence[str], requested: Sequence[str], project_id: str
) -> tuple[str, ...]:
    """The scopes of a token acting in a project as `role`: a viewer's lose every write:*
    scope; a viewer who asked for one by name is PERMISSION_DENIED (reason
    scope_not_allowed), so a narrowed request never silently gets less than it named."""
    if role != VIEWER:
        return tuple(granted)
    asked = {scope for raw in requested for scope in raw.split()}
    writes = sorted(scope for scope in asked if scope.startswith(WRITE_SCOPE_PREFIX))
    if writes:
        raise PermissionDenied(
            f"you are a viewer of {project_id}, so a token for it may not hold "
            f"{', '.join(writes)}; ask an owner to make you an editor, or request only read "
            "scopes",
            reason="scope_not_allowed",
        )
    return tuple(scope for scope in granted if not scope.startswith(WRITE_SCOPE_PREFIX))


def check_owners_remain(
    members: Sequence[Member], user_id: str, new_role: str | None, project_id: str
) -> None:
    """FAILED_PRECONDITION when user_id is the project's last owner and would stop being
    one (new_role None: removed)."""
    owners = [member.user_id for member in members if member.role == OWNER]
    if owners != [user_id] or new_role == OWNER:
        return
    change = "removed" if new_role is None else f"made {new_role}"
    raise FailedPrecondition(
        f"{user_id} is the last owner of {project_id} and cannot be {change}; make another "
        f"member an owner first (PUT /v1/projects/{project_id}/members/<their user_id> with "
        '{"role": "owner"})',
        reason="last_owner",
    )


def check_member_room(members: Sequence[Member], user_id: str, project_id: str) -> None:
    """FAILED_PRECONDITION when a new member would pass MAX_MEMBERS."""
    if len(members) >= MAX_MEMBERS and all(member.user_id != user_id for member in members):
        raise FailedPrecondition(
            f"{project_id} has {len(members)} members, the most a project may have; remove "
            "members who left before adding more",
            reason="too_many_members",
        )


def _cursor(project_id: str) -> str:
    return base64.urlsafe_b64encode(project_id.encode()).decode()


def _after(token: str) -> str:
    try:
        value = base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeError, ValueError):
        value = ""
    if not _PROJECT_ID.fullmatch(value):
        raise InvalidArgument(
            "page_token is not one this server handed out; start again without it",
            field="page_token",
            reason="page_token_invalid",
        )
    return value


def _not_found(project_id: str) -> NotFound:
    return NotFound(
        f"no project {project_id} for this user: it does not exist or you are not a member",
        reason="project_not_found",
    )


class Projects:
    """The project use cases: create, list, read, manage members, resolve a token's project."""

    def __init__(
        self, store: ProjectStore, *, clock: Callable[[], datetime], new_id: Callable[[], str]
    ) -> None:
        self._store = store
        self._clock = clock
        self._new_id = new_id

    async def _personal(self, actor: Principal) -> tuple[ProjectView, Member]:
        """The caller's personal project (made with the account) and its one member."""
        brief = await self._store.user_brief(actor.user_id)
        email, created_at, plan = brief if brief else (actor.email, self._clock(), actor.plan)
        project = Project(actor.user_id, PERSONAL_NAME, "", created_at, plan)
        member = Member(actor.user_id, actor.user_id, OWNER, created_at, "", email)
        return ProjectView(project=project, role=OWNER, personal=True), member

    async def create(self, actor: Principal, name: str) -> ProjectView:
        """A new shared project whose owner is the caller."""
        label = validate_project_name(name)
        now = self._clock()
        project = Project(self._new_id(), label, actor.user_id, now)
        owner = Member(project.project_id, actor.user_id, OWNER, now, actor.user_id)
        await self._store.add_project(project, owner)
        logger.info("project created", extra={"project_id": project.project_id})
        return ProjectView(project=project, role=OWNER)

    async def list(
        self, actor: Principal, *, all_projects: bool, page_size: int, page_token: str
    ) -> tuple[list[ProjectView], str]:
        """The caller's projects (personal first, then shared by id), or every shared
        project for an admin with all_projects; one page and the next page's token."""
        if not 0 <= page_size <= MAX_PAGE:
            raise InvalidArgument(
                f"page_size must be within 1 and {MAX_PAGE} (0 means {DEFAULT_PAGE}), "
                f"got {page_size}",
                field="page_size",
                reason="page_size_invalid",
            )
        if all_projects and not actor.is_admin:
            raise PermissionDenied(
                "only admins may list every project; leave `all` unset for your own",
                reason="not_admin",
            )
        limit = page_size or DEFAULT_PAGE
        after = _after(page_token) if page_token else ""
        views: list[ProjectView] = []
        if all_projects:
            rows = await self._store.all_projects(after=after, limit=limit + 1)
            for project in rows[:limit]:
                member = await self._store.member(project.project_id, actor.user_id)
                views.append(ProjectView(project, member.role if member else OWNER))
        else:
            if not page_token:
                views.append((await self._personal(actor))[0])
            found = await self._store.projects_of(actor.user_id, after=after, limit=limit + 1)
            rows = [project for project, _ in found]
            views += [ProjectView(project, role) for project, role in found[:limit]]
        token = _cursor(rows[limit - 1].project_id) if len(rows) > limit else ""
        return views, token

    async def get(self, actor: Principal, project_id: str) -> ProjectDetail:
        """A project the caller is a member of (admins: any), with its members."""
        project_id = validate_project_id(project_id)
        if is_personal(project_id):
            if project_id != actor.user_id:
                raise _not_found(project_id)
            view, member = await self._personal(actor)
            return ProjectDetail(view, (member,))
        view = await self._view(actor, project_id)
        return ProjectDetail(view, tuple(await self._store.members(project_id)))

    async def _view(self, actor: Principal, project_id: str) -> ProjectView:
        """The shared project as the caller sees it, or NOT_FOUND for a non-member."""
        project = await self._store.project(project_id)
        member = await self._store.member(project_id, actor.user_id) if project else None
        if project is None or (member is None and not actor.is_admin):
            raise _not_found(project_id)
        return ProjectView(project, member.role if member else OWNER)

    async def _managed(self, actor: Principal, project_id: str, action: str) -> ProjectView:
        """A shared project the caller may manage (an owner, or an admin)."""
        project_id = validate_project_id(project_id)
        if is_personal(project_id):
            if project_id != actor.user_id and not actor.is_admin:
                raise _not_found(project_id)
            raise FailedPrecondition(
                f"{project_id} is a personal project, which has one member, its user, and "
                f"cannot {action}; create a shared project (POST /v1/projects) and work in it",
                reason="personal_project",
            )
        view = await self._view(actor, project_id)
        if view.role != OWNER and not actor.is_admin:
            raise PermissionDenied(
                f"you are {view.role} of {project_id}; only its owners manage members",
                reason="not_project_owner",
            )
        return view

    async def put_member(
        self, actor: Principal, project_id: str, user_id: str, role: str
    ) -> MemberChange:
        """Adds user_id to the project with role, or changes their role (owners, admins)."""
        project_id = validate_project_id(project_id)
        user_id = validate_user_id(user_id)
        role = validate_project_role(role)
        await self._managed(actor, project_id, "take members")
        brief = await self._store.user_brief(user_id)
        if brief is None:
            raise NotFound(f"user {user_id} does not exist", reason="user_not_found")
        email = brief[0]

        def check(members: Sequence[Member]) -> None:
            check_member_room(members, user_id, project_id)
            check_owners_remain(members, user_id, role, project_id)

        member = Member(project_id, user_id, role, self._clock(), actor.user_id, email)
        change = await self._store.put_member(member, check)
        logger.info(
            "project member put",
            extra={"project_id": project_id, "role": role, "was": change.previous_role},
        )
        return change

    async def remove_member(self, actor: Principal, project_id: str, user_id: str) -> None:
        """Removes user_id from the project: owners and admins may remove anyone, any
        member may remove themselves. Not a member: NOT_FOUND."""
        project_id = validate_project_id(project_id)
        user_id = validate_user_id(user_id)
        if user_id == actor.user_id and not is_personal(project_id):
            await self._view(actor, project_id)
        else:
            await self._managed(actor, project_id, "lose its member")

        def check(members: Sequence[Member]) -> None:
            check_owners_remain(members, user_id, None, project_id)

        if not await self._store.remove_member(project_id, user_id, check):
            raise NotFound(
                f"{user_id} is not a member of {project_id}", reason="project_member_not_found"
            )
        logger.info("project member removed", extra={"project_id": project_id})


async def token_project(
    store: MembershipReader, user_id: str, user_is_admin: bool, requested: str
) -> TokenProject | None:
    """The project a new token acts in, or None for the personal project (no claim).

    A member gets their role; an admin may name any shared project and acts there as an
    owner; anyone else, and a personal project not the user's own, is NOT_FOUND (ids do not
    leak)."""
    if not requested.strip() or requested.strip() == user_id:
        return None
    project_id = validate_project_id(requested, field_name="project")
    if is_personal(project_id):
        raise _not_found(project_id)
    member = await store.member(project_id, user_id)
    shared = await store.project(project_id) if member is not None or user_is_admin else None
    if shared is not None and user_is_admin:
        # An admin acts as an owner in any project, whatever role a membership gives them.
        return TokenProject(project_id, OWNER, shared.plan)
    if shared is not None and member is not None:
        return TokenProject(project_id, member.role, shared.plan)
    raise _not_found(project_id)
