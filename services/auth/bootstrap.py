"""Commands that prepare a mesh: the first admin, service accounts, signing key rotation."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from services.auth.domain import service_account_email, validate_account_role
from services.auth.server import AuthComponents, open_components
from services.auth.settings import AuthSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BootstrapResult:
    """The admin user and a fresh API key for it (shown once)."""

    user_id: str
    email: str
    created: bool
    api_key: str


async def _opened(settings: AuthSettings) -> AuthComponents:
    parts = open_components(settings)
    await parts.database.create_schema()
    return parts


async def bootstrap_admin(
    settings: AuthSettings, email: str, password: str | None = None
) -> BootstrapResult:
    """Creates the admin user if missing (idempotent) and returns a new API key for it.

    An existing admin keeps its password; every call adds one API key, since a key's secret
    cannot be shown again.
    """
    parts = await _opened(settings)
    try:
        user, created = await parts.accounts.ensure_user(
            email=email, role="admin", name="admin", password=password
        )
        key = await parts.accounts.add_key(user.user_id, "bootstrap")
    finally:
        await parts.database.close()
    logger.info("admin ready", extra={"user_id": user.user_id, "new_user": created})
    return BootstrapResult(
        user_id=user.user_id, email=user.email, created=created, api_key=key.api_key
    )


async def ensure_service_account(
    settings: AuthSettings, name: str, *, role: str = "service"
) -> str:
    """Creates account `name` with `role` if missing; returns a fresh API key.

    role is "service" (the mesh's own services, scope internal) or "operator" (the
    canary operator: read:models and write:models). An existing account with another
    role is FAILED_PRECONDITION.
    """
    account_role = validate_account_role(role)
    email = service_account_email(name)
    parts = await _opened(settings)
    try:
        user, created = await parts.accounts.ensure_user(email=email, role=account_role, name=name)
        key = await parts.accounts.add_key(user.user_id, name)
    finally:
        await parts.database.close()
    logger.info(
        "service account ready",
        extra={
            "user_id": user.user_id,
            "account": name,
            "role": account_role,
            "new_user": created,
        },
    )
    return key.api_key


async def rotate_signing_key(settings: AuthSettings) -> str:
    """Adds a signing key that signs from now on; returns its kid.

    Older keys stay in the JWKS until the tokens they signed have expired, then are retired.
    Running replicas pick the new key up within key_refresh_s.
    """
    parts = await _opened(settings)
    try:
        await parts.keys.ensure()
        return await parts.keys.rotate()
    finally:
        await parts.database.close()
