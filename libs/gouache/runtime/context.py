"""Per-call state in contextvars: request id, job id and the authenticated principal."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "gouache_request_id", default=None
)
job_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "gouache_job_id", default=None
)

ADMIN_SCOPE = "admin:*"
INTERNAL_SCOPE = "internal"
# The plan of a token without a `plan` claim: it decides the caller's rate limit.
DEFAULT_PLAN = "free"
# Roles in a project, strongest first: owners manage members, editors create and delete,
# viewers only read (their tokens carry no write:* scope).
PROJECT_ROLES = ("owner", "editor", "viewer")


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user, an admin, or another gouache service."""

    user_id: str
    role: str
    scopes: frozenset[str] = field(default_factory=frozenset)
    email: str = ""
    token: str = ""
    plan: str = DEFAULT_PLAN
    # The API key the token was exchanged for ("" for a password login).
    api_key_id: str = ""
    # The project the token acts in ("" before the `project` claim existed: the personal
    # project) and the caller's role in it. Images, jobs, batches and webhooks belong to a
    # project; a user's personal project has the user's own id, so tokens without the claim
    # and rows from before projects keep meaning what they meant.
    project: str = ""
    project_role: str = "owner"

    @property
    def project_id(self) -> str:
        """The project whose resources this call sees and creates."""
        return self.project or self.user_id

    @property
    def is_admin(self) -> bool:
        return self.role == "admin" or ADMIN_SCOPE in self.scopes

    @property
    def is_service(self) -> bool:
        return self.role == "service" and INTERNAL_SCOPE in self.scopes

    def has_scope(self, scope: str) -> bool:
        """admin:* implies every scope; services hold `internal` and act for users."""
        return scope in self.scopes or ADMIN_SCOPE in self.scopes or self.is_service


principal_var: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "gouache_principal", default=None
)


def current_principal() -> Principal:
    """The authenticated caller of the current RPC; raises if the method is public."""
    principal = principal_var.get()
    if principal is None:
        from gouache.runtime.errors import Unauthenticated

        raise Unauthenticated(
            "this call needs a bearer token: send 'authorization: Bearer <token>'"
        )
    return principal
