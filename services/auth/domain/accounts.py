"""The auth use cases: tokens for credentials, users, API keys; and the store they need."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from gouache.runtime.context import DEFAULT_PLAN, Principal
from gouache.runtime.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from services.auth.domain.credentials import (
    ApiKeyParts,
    ScryptParams,
    api_secret_matches,
    hash_api_secret,
    hash_password,
    new_api_key,
    parse_api_key,
    verify_password,
)
from services.auth.domain.plans import validate_new_plan
from services.auth.domain.projects import (
    OWNER,
    Member,
    Project,
    project_scopes,
    token_project,
)
from services.auth.domain.rules import (
    CREATABLE_ROLES,
    MAX_KEY_NAME_CHARS,
    MAX_NAME_CHARS,
    MAX_PASSWORD_CHARS,
    grant_scopes,
    normalize_email,
    token_claims,
    validate_label,
    validate_new_role,
    validate_password,
)
from services.auth.domain.throttle import FailureThrottle
from services.auth.keys import KeyRing

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]

GRANT_CLIENT_CREDENTIALS = "client_credentials"
GRANT_PASSWORD = "password"
_BAD_CREDENTIALS_KEY = "the API key is not valid (unknown, revoked or mistyped); ask for a new one"
_BAD_CREDENTIALS_PASSWORD = "wrong email or password"
# Matches no secret: what a presented secret is compared with when its key does not exist.
_UNKNOWN_KEY_HASH = "0" * 64


def utc_now() -> datetime:
    """The current time, aware and in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class User:
    """A person, an admin or a service account; password_hash is None for key-only accounts."""

    user_id: str
    email: str
    name: str
    role: str
    password_hash: str | None
    created_at: datetime
    # The personal project's plan (services/auth/domain/plans.py).
    plan: str = DEFAULT_PLAN


@dataclass(frozen=True)
class ApiKeyRecord:
    """An API key as stored: the hash of its secret, never the secret."""

    key_id: str
    user_id: str
    name: str
    secret_hash: str
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


@dataclass(frozen=True)
class IssuedToken:
    """A signed access token and what it grants."""

    access_token: str
    expires_in: int
    scopes: tuple[str, ...]
    # The project the token acts in (the user's own id: the personal project) and the role.
    project_id: str = ""
    project_role: str = ""
    plan: str = DEFAULT_PLAN


@dataclass(frozen=True)
class DeletedAccount:
    """What erasing an account removed."""

    deleted: bool
    api_keys: int
    memberships: int


@dataclass(frozen=True)
class CreatedApiKey:
    """A new key's record and its full text, shown once."""

    record: ApiKeyRecord
    api_key: str


class AuthStore(Protocol):
    """What the use cases need from the database (store.AuthDatabase implements it)."""

    async def add_user(self, user: User) -> None:
        """Inserts a user; AlreadyExists when the email is taken."""

    async def user_by_id(self, user_id: str) -> User | None: ...

    async def user_by_email(self, email: str) -> User | None: ...

    async def add_api_key(self, key: ApiKeyRecord) -> None: ...

    async def api_key(self, key_id: str) -> ApiKeyRecord | None: ...

    async def api_keys_of(self, user_id: str) -> list[ApiKeyRecord]: ...

    async def revoke_api_key(self, key_id: str, at: datetime) -> None: ...

    async def delete_account(self, user_id: str) -> DeletedAccount:
        """Deletes the user's API keys, project memberships and the user."""
        ...

    async def member(self, project_id: str, user_id: str) -> Member | None: ...

    async def project(self, project_id: str) -> Project | None: ...


@dataclass(frozen=True)
class TokenPolicy:
    """Who issues tokens, for whom, and for how long."""

    issuer: str
    audience: str
    ttl_s: int = 900


class Accounts:
    """The auth use cases over a store and a signing key ring."""

    def __init__(
        self,
        store: AuthStore,
        keys: KeyRing,
        policy: TokenPolicy,
        *,
        throttle: FailureThrottle | None = None,
        hasher: ScryptParams | None = None,
        clock: Clock = utc_now,
        new_user_id: Callable[[], str],
    ) -> None:
        self._store = store
        self._keys = keys
        self._policy = policy
        self._throttle = throttle or FailureThrottle()
        self._hasher = hasher or ScryptParams()
        self._clock = clock
        self._new_user_id = new_user_id
        self._dummy_hash: str | None = None

    async def issue_token(
        self,
        grant_type: str,
        *,
        api_key: str = "",
        email: str = "",
        password: str = "",
        scopes: Sequence[str] = (),
        project: str = "",
    ) -> IssuedToken:
        """Exchanges an API key or an email and password for a signed access token, acting
        in `project` (empty: the personal project)."""
        if grant_type == GRANT_CLIENT_CREDENTIALS:
            user, key_id = await self._user_for_api_key(api_key)
            return await self.token_for(user, scopes, api_key_id=key_id, project=project)
        if grant_type == GRANT_PASSWORD:
            user = await self._user_for_password(email, password)
        else:
            raise InvalidArgument(
                f"grant_type must be {GRANT_CLIENT_CREDENTIALS!r} (with api_key) or "
                f"{GRANT_PASSWORD!r} (with email and password), got {grant_type!r}",
                field="grant_type",
                reason="grant_type_unsupported",
            )
        return await self.token_for(user, scopes, project=project)

    async def issue_client_token(
        self, key_id: str, secret: str, scopes: Sequence[str] = (), *, project: str = ""
    ) -> IssuedToken:
        """A token for OAuth2 client credentials: client_id is the key's id, client_secret its
        secret (the two halves of `gk_<key_id>_<secret>`)."""
        user = await self._user_for_key(ApiKeyParts(key_id=key_id, secret=secret))
        return await self.token_for(user, scopes, api_key_id=key_id, project=project)

    async def federated_token(
        self,
        email: str,
        name: str,
        scopes: Sequence[str] = (),
        *,
        create: bool = True,
        project: str = "",
    ) -> IssuedToken:
        """A token for the user with this email, whom an external identity provider vouches
        for (single sign-on); a person unknown here becomes a user when create is set.

        Refusals carry reasons starting with "assertion_": the token endpoint answers them
        as invalid_grant."""
        try:
            address = normalize_email(email)
        except InvalidArgument as exc:
            raise Unauthenticated(
                f"the identity provider's email is not usable: {exc.message}",
                reason="assertion_email_invalid",
            ) from None
        user = await self._store.user_by_email(address)
        if user is None and create:
            try:
                user, _ = await self.ensure_user(
                    email=address, role="user", name=name.strip()[:MAX_NAME_CHARS]
                )
            except AlreadyExists:
                # Signed in twice at once: the other sign-in made the user.
                user = await self._store.user_by_email(address)
        if user is None:
            raise Unauthenticated(
                f"{address} has no gouache account; ask an admin to create one",
                reason="assertion_unknown_user",
            )
        if user.role not in CREATABLE_ROLES:
            raise PermissionDenied(
                f"{address} is a {user.role} account, which cannot sign in by single sign-on",
                reason="assertion_role_refused",
            )
        return await self.token_for(user, scopes, project=project)

    async def token_for(
        self,
        user: User,
        scopes: Sequence[str] = (),
        *,
        api_key_id: str = "",
        project: str = "",
    ) -> IssuedToken:
        """Signs an access token for user with the requested (or all allowed) scopes; one
        exchanged for an API key names it. With `project` (a shared project the user is a
        member of) the token acts in it with the user's role there; a viewer's token holds
        no write:* scope. The token carries the acting project's plan: the shared
        project's, else the user's own. Single sign-on takes no plan from the identity
        provider (oidc.py maps email and name only), so the plan stored here decides for
        every token."""
        granted = grant_scopes(user.role, scopes)
        acting = await token_project(self._store, user.user_id, user.role == "admin", project)
        if acting is not None:
            granted = project_scopes(acting.role, granted, scopes, acting.project)
        claims = token_claims(
            user_id=user.user_id,
            role=user.role,
            email=user.email,
            scopes=granted,
            now=self._clock(),
            ttl_s=self._policy.ttl_s,
            issuer=self._policy.issuer,
            audience=self._policy.audience,
            api_key_id=api_key_id,
            project=acting.project if acting else "",
            project_role=acting.role if acting else "",
            plan=acting.plan if acting else user.plan,
        )
        token = await self._keys.sign(claims)
        logger.info(
            "token issued",
            extra={
                "user_id": user.user_id,
                "role": user.role,
                "scope": claims["scope"],
                "project": claims.get("project", ""),
            },
        )
        return IssuedToken(
            access_token=token,
            expires_in=self._policy.ttl_s,
            scopes=granted,
            project_id=acting.project if acting else user.user_id,
            project_role=acting.role if acting else OWNER,
            plan=claims["plan"],
        )

    async def _user_for_api_key(self, api_key: str) -> tuple[User, str]:
        """The key's owner and the key id, or Unauthenticated."""
        if not api_key.strip():
            raise InvalidArgument(
                "grant_type client_credentials needs api_key", field="api_key", reason="missing"
            )
        parts = parse_api_key(api_key)
        return await self._user_for_key(parts), parts.key_id

    async def _user_for_key(self, parts: ApiKeyParts) -> User:
        """The owner of a live key whose secret matches, or Unauthenticated."""
        credential = f"key:{parts.key_id}"
        self._throttle.check(credential)
        record = await self._store.api_key(parts.key_id)
        user = await self._store.user_by_id(record.user_id) if record else None
        # The secret is compared even for an unknown key, so timing does not tell them apart.
        matches = api_secret_matches(
            parts.secret, record.secret_hash if record else _UNKNOWN_KEY_HASH
        )
        if record is None or user is None or record.revoked or not matches:
            self._throttle.record_failure(credential)
            logger.info("api key refused", extra={"key_id": parts.key_id})
            raise Unauthenticated(_BAD_CREDENTIALS_KEY, reason="invalid_credentials")
        self._throttle.reset(credential)
        return user

    async def _user_for_password(self, email: str, password: str) -> User:
        if not email.strip() or not password:
            raise InvalidArgument(
                "grant_type password needs email and password",
                field="email" if not email.strip() else "password",
                reason="missing",
            )
        address = email.strip().lower()
        credential = f"email:{address}"
        self._throttle.check(credential)
        user = await self._store.user_by_email(address)
        if len(password) > MAX_PASSWORD_CHARS:
            matches = False
        elif user is not None and user.password_hash:
            matches = await asyncio.to_thread(verify_password, password, user.password_hash)
        else:
            # Same work as a real check, so timing does not tell which emails exist.
            await asyncio.to_thread(verify_password, password, await self._dummy())
            matches = False
        if user is None or not matches:
            self._throttle.record_failure(credential)
            logger.info("password refused", extra={"email_domain": address.rpartition("@")[2]})
            raise Unauthenticated(_BAD_CREDENTIALS_PASSWORD, reason="invalid_credentials")
        self._throttle.reset(credential)
        return user

    async def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = await asyncio.to_thread(
                hash_password, secrets.token_hex(16), self._hasher
            )
        return self._dummy_hash

    async def create_user(
        self, *, email: str, password: str, name: str = "", role: str = "user", plan: str = ""
    ) -> User:
        """Adds a user with a password, on plan (empty: free); the caller's authority is
        checked by the policy."""
        address = normalize_email(email)
        validate_password(password)
        plan = validate_new_plan(plan)
        user = User(
            user_id=self._new_user_id(),
            email=address,
            name=validate_label(name, field_name="name", max_chars=MAX_NAME_CHARS),
            role=validate_new_role(role),
            password_hash=await asyncio.to_thread(hash_password, password, self._hasher),
            created_at=self._clock(),
            plan=plan,
        )
        await self._store.add_user(user)
        logger.info("user created", extra={"user_id": user.user_id, "role": user.role})
        return user

    async def ensure_user(
        self, *, email: str, role: str, name: str = "", password: str | None = None
    ) -> tuple[User, bool]:
        """The user with this email, created with role when missing; True if created.

        An existing user keeps its password; one with another role is FAILED_PRECONDITION.
        """
        address = normalize_email(email)
        if password is not None:
            validate_password(password)
        existing = await self._store.user_by_email(address)
        if existing is None:
            user = User(
                user_id=self._new_user_id(),
                email=address,
                name=name,
                role=role,
                password_hash=(
                    await asyncio.to_thread(hash_password, password, self._hasher)
                    if password is not None
                    else None
                ),
                created_at=self._clock(),
            )
            await self._store.add_user(user)
            logger.info("user created", extra={"user_id": user.user_id, "role": role})
            return user, True
        if existing.role != role:
            raise FailedPrecondition(
                f"{address} already exists with role {existing.role!r}, not {role!r}; "
                "use another email"
            )
        return existing, False

    async def create_api_key(
        self, actor: Principal, *, name: str, user_id: str = ""
    ) -> CreatedApiKey:
        """A new key for the caller, or for user_id when the caller is an admin."""
        label = validate_label(name, field_name="name", max_chars=MAX_KEY_NAME_CHARS)
        owner_id = user_id.strip() or actor.user_id
        if owner_id != actor.user_id and not actor.is_admin:
            raise PermissionDenied(
                "only admins may create API keys for another user; leave user_id empty "
                "for a key of your own",
                reason="not_admin",
            )
        if await self._store.user_by_id(owner_id) is None:
            raise NotFound(f"user {owner_id} does not exist", reason="user_not_found")
        return await self.add_key(owner_id, label)

    async def add_key(self, user_id: str, name: str) -> CreatedApiKey:
        """Stores a fresh key for an existing user; only its secret's hash is kept."""
        parts = new_api_key()
        record = ApiKeyRecord(
            key_id=parts.key_id,
            user_id=user_id,
            name=name,
            secret_hash=hash_api_secret(parts.secret),
            created_at=self._clock(),
        )
        await self._store.add_api_key(record)
        logger.info("api key created", extra={"user_id": user_id, "key_id": parts.key_id})
        return CreatedApiKey(record=record, api_key=parts.text)

    async def list_api_keys(self, actor: Principal) -> list[ApiKeyRecord]:
        """The caller's keys, revoked ones included, oldest first."""
        return await self._store.api_keys_of(actor.user_id)

    async def revoke_api_key(self, actor: Principal, key_id: str) -> None:
        """Revokes one of the caller's keys (admins: anyone's); repeating it is harmless."""
        key_id = key_id.strip()
        if not key_id:
            raise InvalidArgument("key_id is required", field="key_id", reason="missing")
        record = await self._store.api_key(key_id)
        if record is None or (record.user_id != actor.user_id and not actor.is_admin):
            raise NotFound(f"you have no API key {key_id}", reason="api_key_not_found")
        if not record.revoked:
            await self._store.revoke_api_key(key_id, self._clock())
            logger.info("api key revoked", extra={"key_id": key_id, "user_id": record.user_id})

    async def delete_account(self, user_id: str) -> DeletedAccount:
        """A user's erasure (called by jobs, which coordinates it): the API keys, the
        project memberships and the account go; shared projects and their resources stay;
        tokens already issued lapse within their lifetime. Idempotent."""
        user_id = user_id.strip()
        if not user_id:
            raise InvalidArgument("user_id is required: the user to erase", field="user_id")
        result = await self._store.delete_account(user_id)
        logger.info(
            "account deleted",
            extra={
                "user_id": user_id,
                "deleted": result.deleted,
                "api_keys": result.api_keys,
                "memberships": result.memberships,
            },
        )
        return result
