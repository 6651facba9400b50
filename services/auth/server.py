"""Wires the auth service: database, signing keys, use cases, servicer, policy and hooks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from gouache.contracts.auth.v1 import auth_pb2, auth_pb2_grpc
from gouache.db import create_engine, new_id
from gouache.ratelimit.calls import limit_calls
from gouache.runtime.auth import AUTHENTICATED, PUBLIC, TokenSettings, TokenVerifier
from gouache.runtime.server import ServiceSpec
from services.auth.audit import AuditLog
from services.auth.domain import (
    Accounts,
    Clock,
    FailureThrottle,
    Projects,
    ScryptParams,
    TokenPolicy,
    utc_now,
)
from services.auth.domain.plans import Plans
from services.auth.keys import KeyRing, keep_published_s
from services.auth.oidc import OidcConfig, OidcVerifier
from services.auth.servicer import AuthServicer, OAuth2Servicer
from services.auth.settings import AuthSettings
from services.auth.store import AuthDatabase

SERVICE = auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name
OAUTH2_SERVICE = auth_pb2.DESCRIPTOR.services_by_name["OAuth2Service"].full_name

POLICY: Mapping[str, str] = {
    f"/{SERVICE}/IssueToken": PUBLIC,
    f"/{SERVICE}/GetJwks": PUBLIC,
    f"/{SERVICE}/WhoAmI": AUTHENTICATED,
    f"/{SERVICE}/CreateUser": "admin:*",
    f"/{SERVICE}/CreateApiKey": AUTHENTICATED,
    f"/{SERVICE}/ListApiKeys": AUTHENTICATED,
    f"/{SERVICE}/RevokeApiKey": AUTHENTICATED,
    f"/{SERVICE}/DeleteAccount": "internal",
    f"/{SERVICE}/ListAuditEvents": "admin:*",
    f"/{SERVICE}/RecordAuditEvents": "internal",
    # Who may manage a project is the project's own rule (owners; admins): see Projects.
    f"/{SERVICE}/CreateProject": AUTHENTICATED,
    f"/{SERVICE}/ListProjects": AUTHENTICATED,
    f"/{SERVICE}/GetProject": AUTHENTICATED,
    f"/{SERVICE}/PutProjectMember": AUTHENTICATED,
    f"/{SERVICE}/RemoveProjectMember": AUTHENTICATED,
    f"/{SERVICE}/SetUserPlan": "admin:*",
    f"/{SERVICE}/SetProjectPlan": "admin:*",
    f"/{OAUTH2_SERVICE}/IssueOAuth2Token": PUBLIC,
}


@dataclass(frozen=True)
class AuthComponents:
    """The parts of the service that do not depend on gRPC (also used by the commands)."""

    database: AuthDatabase
    keys: KeyRing
    accounts: Accounts
    projects: Projects


def open_components(settings: AuthSettings, *, clock: Clock = utc_now) -> AuthComponents:
    """Creates the engine, key ring and use cases; nothing touches the database yet."""
    sqlite_file = settings.sqlite_path()
    if sqlite_file is not None:
        sqlite_file.parent.mkdir(parents=True, exist_ok=True)
    database = AuthDatabase(create_engine(settings.database_url))
    keys = KeyRing(
        database,
        passphrase=settings.signing_key_passphrase.get_secret_value().encode(),
        keep_s=keep_published_s(settings.token_ttl_s, settings.key_refresh_s),
        refresh_s=settings.key_refresh_s,
        clock=clock,
    )
    accounts = Accounts(
        database,
        keys,
        TokenPolicy(
            issuer=settings.jwt_issuer, audience=settings.jwt_audience, ttl_s=settings.token_ttl_s
        ),
        throttle=FailureThrottle(
            limit=settings.max_failed_logins, window_s=settings.failed_login_window_s
        ),
        hasher=ScryptParams(n=settings.scrypt_n, r=settings.scrypt_r, p=settings.scrypt_p),
        clock=clock,
        new_user_id=lambda: new_id("usr"),
    )
    projects = Projects(database, clock=clock, new_id=lambda: new_id("prj"))
    return AuthComponents(database=database, keys=keys, accounts=accounts, projects=projects)


def oidc_verifier(settings: AuthSettings) -> OidcVerifier | None:
    """The single sign-on issuer's verifier, when one is configured."""
    if not settings.oidc_issuer:
        return None
    return OidcVerifier(
        OidcConfig(
            issuer=settings.oidc_issuer,
            jwks_url=settings.oidc_jwks_url,
            audience=settings.oidc_audience,
            email_claim=settings.oidc_email_claim,
            name_claim=settings.oidc_name_claim,
            algorithms=settings.oidc_algorithm_list(),
            create_users=settings.oidc_create_users,
        )
    )


def local_verifier(settings: AuthSettings, keys: KeyRing) -> TokenVerifier:
    """Verifies tokens with this service's own keys, read from the database (no network)."""

    async def fetch() -> Sequence[Mapping[str, Any]]:
        await keys.reload()
        return await keys.jwks()

    return TokenVerifier(
        fetch, TokenSettings(issuer=settings.jwt_issuer, audience=settings.jwt_audience)
    )


async def build(
    settings: AuthSettings, *, verifier: TokenVerifier | None = None, clock: Clock = utc_now
) -> tuple[ServiceSpec, TokenVerifier]:
    """The service spec and the verifier for its RPCs (its own keys unless one is given)."""
    parts = open_components(settings, clock=clock)
    servicer = AuthServicer(
        parts.accounts, parts.keys, AuditLog(parts.database), parts.projects, Plans(parts.database)
    )
    oauth2 = OAuth2Servicer(parts.accounts, oidc_verifier(settings))

    def register(server: grpc.aio.Server) -> None:
        auth_pb2_grpc.add_AuthServiceServicer_to_server(servicer, server)
        auth_pb2_grpc.add_OAuth2ServiceServicer_to_server(oauth2, server)

    spec = ServiceSpec(
        name="auth",
        service_names=[SERVICE, OAUTH2_SERVICE],
        register=register,
        policy=POLICY,
        on_start=[parts.database.create_schema, parts.keys.ensure],
        on_stop=[parts.database.close],
    )
    return limit_calls(spec, settings), verifier or local_verifier(settings, parts.keys)
