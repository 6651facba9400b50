"""Single sign-on: JWTs from an external OpenID Connect issuer, checked against its JWKS.

A signed-in person's identity provider issues a JWT (an ID token, or an access token for
gouache's audience); the client presents it at the token endpoint with the JWT bearer grant
(RFC 7523 §2.1) and gets a gouache access token for the user with that email. The issuer,
its JWKS URL and the audience are configured (GOUACHE_AUTH_OIDC_*); which claim holds the
email and the name too. Keys are fetched over HTTP(S), kept, and fetched again when a token
names an unknown key id (at most every `min_refresh_s`), so the issuer may rotate them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from gouache.runtime.errors import Unauthenticated, Unavailable

logger = logging.getLogger(__name__)

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# Asymmetric algorithms only: a shared-secret HS256 key could not come from a JWKS URL.
DEFAULT_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA")
MAX_ASSERTION_CHARS = 16 * 1024

JwksFetcher = Callable[[], Awaitable[Mapping[str, Any]]]


@dataclass(frozen=True)
class OidcConfig:
    """Which issuer gouache trusts for single sign-on, and how to read its tokens."""

    issuer: str
    jwks_url: str
    audience: str
    email_claim: str = "email"
    name_claim: str = "name"
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    leeway_s: float = 30.0
    min_refresh_s: float = 30.0
    fetch_timeout_s: float = 5.0
    # Whether a person unknown to gouache becomes a user (role user) at first sign-in.
    create_users: bool = True


@dataclass(frozen=True)
class ExternalIdentity:
    """Who the issuer vouches for."""

    issuer: str
    subject: str
    email: str
    name: str


def _refused(message: str) -> Unauthenticated:
    return Unauthenticated(message, reason="assertion_invalid")


def http_jwks_fetcher(url: str, timeout_s: float) -> JwksFetcher:
    """Fetches the JWKS document from url; Unavailable when the issuer cannot be reached."""

    async def fetch() -> Mapping[str, Any]:
        try:
            async with httpx.AsyncClient(timeout=timeout_s) as client:
                response = await client.get(url, headers={"accept": "application/json"})
                response.raise_for_status()
                document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            logger.warning("cannot fetch the OIDC issuer's JWKS from %s: %s", url, exc)
            raise Unavailable(
                "the single sign-on issuer's keys cannot be fetched right now; retry shortly",
                reason="jwks_unavailable",
            ) from exc
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise Unavailable(
                "the single sign-on issuer's JWKS is not a JSON object with keys",
                reason="jwks_unavailable",
            )
        return document

    return fetch


class OidcVerifier:
    """Verifies JWTs of one external issuer and reads the identity they assert."""

    def __init__(
        self,
        config: OidcConfig,
        fetch: JwksFetcher | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._fetch = fetch or http_jwks_fetcher(config.jwks_url, config.fetch_timeout_s)
        self._monotonic = monotonic
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    @property
    def config(self) -> OidcConfig:
        return self._config

    async def verify(self, assertion: str) -> ExternalIdentity:
        """The identity in a valid assertion, or Unauthenticated (reason assertion_invalid)
        saying what is wrong with it."""
        if not assertion or len(assertion) > MAX_ASSERTION_CHARS:
            raise _refused(f"assertion must be a JWT of at most {MAX_ASSERTION_CHARS} characters")
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            raise _refused("assertion is not a JWT (header.payload.signature)") from None
        algorithm = header.get("alg")
        if algorithm not in self._config.algorithms:
            raise _refused(
                f"assertion is signed with {algorithm!r}; accepted: "
                f"{', '.join(self._config.algorithms)}"
            )
        key = await self._key(str(header.get("kid", "")))
        try:
            claims = jwt.decode(
                assertion,
                key.key,
                algorithms=[algorithm],
                audience=self._config.audience,
                issuer=self._config.issuer,
                leeway=self._config.leeway_s,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise _refused("assertion has expired; sign in again") from None
        except jwt.InvalidAudienceError:
            raise _refused(f"assertion is not for audience {self._config.audience!r}") from None
        except jwt.InvalidIssuerError:
            raise _refused(f"assertion is not from issuer {self._config.issuer!r}") from None
        except jwt.PyJWTError as exc:
            raise _refused(f"assertion is not valid: {exc}") from None
        return self._identity(claims)

    def _identity(self, claims: Mapping[str, Any]) -> ExternalIdentity:
        email = claims.get(self._config.email_claim)
        if not isinstance(email, str) or not email.strip():
            raise _refused(f"assertion has no {self._config.email_claim!r} claim (an email)")
        if claims.get("email_verified") is False:
            raise _refused("the issuer has not verified this email address")
        name = claims.get(self._config.name_claim)
        return ExternalIdentity(
            issuer=self._config.issuer,
            subject=str(claims["sub"]),
            email=email.strip(),
            name=name.strip() if isinstance(name, str) else "",
        )

    async def _key(self, kid: str) -> jwt.PyJWK:
        key = self._keys.get(kid)
        if key is not None:
            return key
        async with self._lock:
            if kid not in self._keys and (
                self._monotonic() - self._fetched_at >= self._config.min_refresh_s
            ):
                self._keys = _parse_jwks(await self._fetch(), self._config.algorithms)
                self._fetched_at = self._monotonic()
        key = self._keys.get(kid)
        if key is None:
            raise _refused(f"assertion is signed by key {kid!r}, which the issuer does not publish")
        return key


def _parse_jwks(document: Mapping[str, Any], algorithms: Sequence[str]) -> dict[str, jwt.PyJWK]:
    """Signing keys by kid; keys that are not for signatures, or that PyJWT cannot read, are
    left out (and logged)."""
    keys: dict[str, jwt.PyJWK] = {}
    for entry in document.get("keys", []):
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(entry)
        except jwt.PyJWTError as exc:
            logger.warning("skipping an OIDC signing key: %s", exc)
            continue
        if key.algorithm_name in algorithms or "alg" not in entry:
            keys[str(entry.get("kid", ""))] = key
    return keys
