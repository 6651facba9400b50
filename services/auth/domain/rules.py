"""Input rules: emails, passwords, roles, names, scopes and the claims of an access token."""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from gouache.runtime.auth import ROLE_SCOPES, SCOPES
from gouache.runtime.errors import InvalidArgument, PermissionDenied

ROLES = ("user", "admin", "service", "operator")
# Roles CreateUser may give; service and operator accounts are made by the bootstrap
# commands, so no API call can mint an account that administers models without a person.
CREATABLE_ROLES = ("user", "admin")
# Roles of accounts the bootstrap commands make (no password, API keys only).
ACCOUNT_ROLES = ("service", "operator")
SERVICE_ACCOUNT_DOMAIN = "services.gouache.internal"
MIN_PASSWORD_CHARS = 12
# Bounds the work one request can cause in the KDF.
MAX_PASSWORD_CHARS = 1024
MAX_EMAIL_CHARS = 254
MAX_NAME_CHARS = 200
MAX_KEY_NAME_CHARS = 100

_EMAIL = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)
_SERVICE_NAME = re.compile(r"[a-z][a-z0-9-]{0,62}")


def normalize_email(email: str) -> str:
    """The canonical form of an email address (trimmed, lower case), or INVALID_ARGUMENT."""
    value = email.strip().lower()
    if not value:
        raise InvalidArgument("email is required", field="email", reason="email_missing")
    if len(value) > MAX_EMAIL_CHARS or not _EMAIL.fullmatch(value):
        raise InvalidArgument(
            f"email {email!r} is not a valid address (expected name@example.com)",
            field="email",
            reason="email_invalid",
        )
    return value


def validate_password(password: str) -> None:
    """Refuses passwords shorter than 12 or longer than 1024 characters."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise InvalidArgument(
            f"password must have at least {MIN_PASSWORD_CHARS} characters",
            field="password",
            reason="password_too_short",
        )
    if len(password) > MAX_PASSWORD_CHARS:
        raise InvalidArgument(
            f"password must have at most {MAX_PASSWORD_CHARS} characters",
            field="password",
            reason="password_too_long",
        )


def validate_label(value: str, *, field_name: str, max_chars: int) -> str:
    """A trimmed free-text label of at most max_chars characters, none of them a control
    character (PostgreSQL cannot store NUL in text; a label is one line)."""
    value = value.strip()
    if len(value) > max_chars:
        raise InvalidArgument(
            f"{field_name} must have at most {max_chars} characters",
            field=field_name,
            reason=f"{field_name}_too_long",
        )
    bad = next((char for char in value if unicodedata.category(char) in _REFUSED), None)
    if bad is not None:
        raise InvalidArgument(
            f"{field_name} must be printable text; it contains U+{ord(bad):04X}, a control "
            "or unpaired surrogate character",
            field=field_name,
            reason=f"{field_name}_invalid",
        )
    return value


# Unicode categories a label may not hold: controls (NUL, newlines, escapes) and surrogates.
_REFUSED = frozenset({"Cc", "Cs"})


def validate_new_role(role: str) -> str:
    """The role for CreateUser: "user" when empty, else "user" or "admin"."""
    value = role.strip().lower() or "user"
    if value not in CREATABLE_ROLES:
        raise InvalidArgument(
            f"role must be one of {', '.join(CREATABLE_ROLES)}, got {role!r}",
            field="role",
            reason="role_invalid",
        )
    return value


def validate_account_role(role: str) -> str:
    """The role of an account made by the bootstrap commands: "service" or "operator"."""
    value = role.strip().lower()
    if value not in ACCOUNT_ROLES:
        known = ", ".join(ROLES)
        raise InvalidArgument(
            f"an account made by the bootstrap commands has role "
            f"{' or '.join(ACCOUNT_ROLES)}, got {role!r} (roles: {known}; people are made "
            "with bootstrap or CreateUser)",
            field="role",
            reason="role_invalid",
        )
    return value


def service_account_email(name: str) -> str:
    """The email that names service account `name`, e.g. jobs@services.gouache.internal."""
    if not _SERVICE_NAME.fullmatch(name):
        raise InvalidArgument(
            f"service account name {name!r} must be lower-case letters, digits and '-', "
            "starting with a letter (at most 63 characters)",
            field="name",
            reason="service_name_invalid",
        )
    return f"{name}@{SERVICE_ACCOUNT_DOMAIN}"


def grant_scopes(role: str, requested: Sequence[str]) -> tuple[str, ...]:
    """The scopes a token gets: all the role allows when none are requested, else a subset.

    An unknown scope is INVALID_ARGUMENT; a known one the role does not allow is
    PERMISSION_DENIED.
    """
    allowed = ROLE_SCOPES.get(role, ())
    wanted = [scope for raw in requested for scope in raw.split()]
    if not wanted:
        return tuple(allowed)
    known = {*SCOPES, *(scope for scopes in ROLE_SCOPES.values() for scope in scopes)}
    unknown = sorted({scope for scope in wanted if scope not in known})
    if unknown:
        raise InvalidArgument(
            f"unknown scope(s) {', '.join(unknown)}; known scopes: {', '.join(sorted(known))}",
            field="scopes",
            reason="scope_unknown",
        )
    refused = sorted({scope for scope in wanted if scope not in allowed})
    if refused:
        raise PermissionDenied(
            f"role {role!r} may not hold scope(s) {', '.join(refused)}; "
            f"it may request {', '.join(allowed) or 'no scopes'}",
            reason="scope_not_allowed",
        )
    return tuple(scope for scope in allowed if scope in wanted)


def token_claims(
    *,
    user_id: str,
    role: str,
    email: str,
    scopes: Sequence[str],
    now: datetime,
    ttl_s: int,
    issuer: str,
    audience: str,
    api_key_id: str = "",
    project: str = "",
    project_role: str = "",
    plan: str = "",
) -> dict[str, Any]:
    """The JWT claims of an access token for one user.

    A token exchanged for an API key names the key (`api_key_id`): services charge its
    calls to the key's rate limit as well as to the user's. A token acting in a shared
    project names it (`project`) and the user's role there (`project_role`); without them
    the token acts in the user's personal project, as owner. `plan` is the acting
    project's plan (services read it for rate limits, quotas and retention); without it
    services take the free plan.
    """
    issued_at = int(now.timestamp())
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": user_id,
        "role": role,
        "scope": " ".join(scopes),
        "email": email,
        "iat": issued_at,
        "exp": issued_at + ttl_s,
        "jti": uuid.uuid4().hex,
    }
    if api_key_id:
        claims["api_key_id"] = api_key_id
    if project:
        claims["project"] = project
        claims["project_role"] = project_role
    if plan:
        claims["plan"] = plan
    return claims
