"""Bearer-token verification shared by every service: JWKS keys, scopes and method policies."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jwt
from jwt.algorithms import OKPAlgorithm

from gouache.runtime.context import DEFAULT_PLAN, Principal
from gouache.runtime.errors import PermissionDenied, Unauthenticated, Unavailable

logger = logging.getLogger(__name__)

# Scopes a token may carry (product requirements §11.3), plus `internal` for services.
# write:models registers model versions, routes aliases and points versions at endpoints.
SCOPES = ("read:jobs", "write:jobs", "read:models", "write:models", "write:webhooks", "admin:*")
ROLE_SCOPES: Mapping[str, tuple[str, ...]] = {
    "user": ("read:jobs", "write:jobs", "read:models", "write:webhooks"),
    "admin": (*SCOPES,),
    "service": ("internal",),
    # The canary operator: model administration only, never users' jobs.
    "operator": ("read:models", "write:models"),
}

# Method policy values: a scope the token must hold, AUTHENTICATED for any valid
# token, or PUBLIC for no token at all.
PUBLIC = "public"
AUTHENTICATED = "authenticated"
MethodPolicy = Mapping[str, str]

JwksFetcher = Callable[[], Awaitable[Sequence[Mapping[str, Any]]]]
# Tokens a verifier remembers having verified, most recently used kept.
VERIFIED_TOKENS = 1024


@dataclass(frozen=True)
class TokenSettings:
    issuer: str = "gouache-auth"
    audience: str = "gouache"
    leeway_s: float = 5.0


class TokenVerifier:
    """Verifies EdDSA JWTs against keys from a JWKS source, refreshing on unknown key ids.

    A client sends the same token with every call until it renews it, and checking the
    signature and claims again each time was a tenth of a replica's CPU under load
    (ListModels with ghz). So the principal of a verified token is remembered (the last
    `cache_size` tokens) and given again for the same token while it has not expired and
    the key that signed it is still the one held under its key id; after a JWKS refresh
    that replaced or dropped the key, or once it expires, the token is verified afresh.
    """

    def __init__(
        self,
        fetch_jwks: JwksFetcher,
        settings: TokenSettings = TokenSettings(),
        *,
        min_refresh_interval_s: float = 5.0,
        cache_size: int = VERIFIED_TOKENS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._fetch = fetch_jwks
        self._settings = settings
        self._keys: dict[str, Any] = {}
        self._last_refresh = 0.0
        self._min_refresh = min_refresh_interval_s
        self._lock = asyncio.Lock()
        self._cache_size = cache_size
        self._clock = clock
        # token -> (principal, its exp claim, key id, the key that verified it)
        self._verified: OrderedDict[str, tuple[Principal, float, str, Any]] = OrderedDict()

    async def refresh(self) -> None:
        """Fetches the current JWKS; keeps the old keys if the source is unreachable."""
        async with self._lock:
            await self._refresh_locked()

    async def _refresh_locked(self) -> None:
        self._last_refresh = time.monotonic()
        try:
            jwks = await self._fetch()
        except Exception as exc:
            logger.warning("could not fetch JWKS", extra={"error": str(exc)})
            return
        self._keys = {
            str(jwk["kid"]): OKPAlgorithm.from_jwk(dict(jwk)) for jwk in jwks if "kid" in jwk
        }

    async def _key_for(self, kid: str) -> Any:
        if kid not in self._keys:
            # Requests that arrive while a fetch is under way wait for it under the lock,
            # then find the key, instead of being refused because a refresh just started.
            async with self._lock:
                stale = time.monotonic() - self._last_refresh >= self._min_refresh
                if kid not in self._keys and stale:
                    await self._refresh_locked()
        key = self._keys.get(kid)
        if key is None:
            if not self._keys:
                raise Unavailable("token keys are not available yet; retry in a few seconds")
            raise Unauthenticated("the token was signed by an unknown key; get a new token")
        return key

    async def verify(self, token: str) -> Principal:
        """Returns the principal a valid token names, or raises Unauthenticated with why."""
        remembered = self._verified.get(token)
        if remembered is not None:
            principal, expires_at, kid, key = remembered
            fresh = self._clock() < expires_at + self._settings.leeway_s
            if fresh and self._keys.get(kid) is key:
                self._verified.move_to_end(token)
                return principal
            del self._verified[token]
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"malformed bearer token: {exc}") from exc
        if header.get("alg") != "EdDSA" or not header.get("kid"):
            raise Unauthenticated("bearer token must be an EdDSA JWT with a key id")
        key = await self._key_for(str(header["kid"]))
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=["EdDSA"],
                audience=self._settings.audience,
                issuer=self._settings.issuer,
                leeway=self._settings.leeway_s,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("the bearer token has expired; request a new one") from exc
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"invalid bearer token: {exc}") from exc
        scopes = frozenset(str(claims.get("scope", "")).split())
        principal = Principal(
            user_id=str(claims["sub"]),
            role=str(claims.get("role", "user")),
            scopes=scopes,
            email=str(claims.get("email", "")),
            token=token,
            plan=str(claims.get("plan") or DEFAULT_PLAN),
            api_key_id=str(claims.get("api_key_id", "")),
            project=str(claims.get("project", "")),
            project_role=str(claims.get("project_role") or "owner"),
        )
        if self._cache_size > 0:
            self._verified[token] = (principal, float(claims["exp"]), str(header["kid"]), key)
            if len(self._verified) > self._cache_size:
                self._verified.popitem(last=False)
        return principal


def bearer_token(metadata: Sequence[tuple[str, str | bytes]] | None) -> str | None:
    """The token of an `authorization: Bearer <token>` header, if any."""
    for key, value in metadata or ():
        if key.lower() == "authorization":
            text = value.decode() if isinstance(value, bytes) else value
            scheme, _, token = text.strip().partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("authorization header must be 'Bearer <token>'")
            return token.strip()
    return None


async def authorize(
    policy: MethodPolicy,
    method: str,
    metadata: Sequence[tuple[str, str | bytes]] | None,
    verifier: TokenVerifier,
) -> Principal | None:
    """Applies a service's method policy to one call; fails closed for unlisted methods."""
    required = policy.get(method)
    if required is None:
        raise PermissionDenied(f"{method} is not exposed by this service")
    if required == PUBLIC:
        return None
    token = bearer_token(metadata)
    if token is None:
        raise Unauthenticated("missing bearer token: send 'authorization: Bearer <token>'")
    principal = await verifier.verify(token)
    if required != AUTHENTICATED and not principal.has_scope(required):
        raise PermissionDenied(f"this call needs the '{required}' scope; the token has none of it")
    return principal
