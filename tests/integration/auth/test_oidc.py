"""Single sign-on: an external OIDC issuer's JWTs, checked against its JWKS served over HTTP on
127.0.0.1, are exchanged at the token endpoint (RFC 7523 JWT bearer grant) by OAuth2Service
in process; every bad assertion is invalid_grant with a reason a person can act on."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import grpc
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from google.api import httpbody_pb2
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from gouache.contracts.auth.v1 import auth_pb2, auth_pb2_grpc
from gouache.runtime.errors import Unauthenticated
from gouache.runtime.ports import free_port
from gouache.runtime.server import RunningService, start_service
from services.auth.bootstrap import bootstrap_admin, ensure_service_account
from services.auth.oauth2 import OAuth2Error, parse_token_request
from services.auth.oidc import JWT_BEARER_GRANT, OidcConfig, OidcVerifier, http_jwks_fetcher
from services.auth.server import build
from services.auth.servicer import STATUS_HEADER
from services.auth.settings import AuthSettings

ISSUER = "https://idp.example.com/"
AUDIENCE = "gouache-api"
FORM = "application/x-www-form-urlencoded"


@dataclass
class Issuer:
    """A stand-in identity provider: signing keys, and the JWKS it publishes over HTTP."""

    url: str = ""
    rsa_key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    ec_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    published: list[dict[str, Any]] = field(default_factory=list)
    fetches: int = 0

    def publish(self, *kids: str) -> None:
        keys = {"rsa-1": self.rsa_key, "ec-1": self.ec_key}
        self.published = []
        for kid in kids:
            key = keys[kid]
            jwk = json.loads(
                RSAAlgorithm.to_jwk(key.public_key())
                if isinstance(key, rsa.RSAPrivateKey)
                else ECAlgorithm.to_jwk(key.public_key())
            )
            self.published.append({**jwk, "kid": kid, "use": "sig"})

    def sign(self, *, kid: str = "rsa-1", alg: str = "RS256", **overrides: Any) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "idp|42",
            "iat": now,
            "exp": now + 300,
            "email": "ada@example.com",
            "email_verified": True,
            "name": "Ada Lovelace",
            **overrides,
        }
        claims = {key: value for key, value in claims.items() if value is not None}
        key: Any = self.ec_key if alg.startswith("ES") else self.rsa_key
        if alg.startswith("HS"):
            key = "a shared secret of at least thirty-two bytes"
        return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


@pytest.fixture(scope="module")
async def issuer() -> AsyncIterator[Issuer]:
    idp = Issuer()
    idp.publish("rsa-1", "ec-1")

    async def jwks(request: web.Request) -> web.Response:
        idp.fetches += 1
        return web.json_response({"keys": idp.published})

    app = web.Application()
    app.router.add_get("/jwks", jwks)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    idp.url = f"http://127.0.0.1:{port}/jwks"
    yield idp
    await runner.cleanup()


@dataclass
class Sso:
    settings: AuthSettings
    running: RunningService
    channel: grpc.aio.Channel

    async def token(
        self, assertion: str, *, scope: str = "", authorization: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        fields = {"grant_type": JWT_BEARER_GRANT, "assertion": assertion}
        if scope:
            fields["scope"] = scope
        call = auth_pb2_grpc.OAuth2ServiceStub(self.channel).IssueOAuth2Token(
            auth_pb2.IssueOAuth2TokenRequest(
                body=httpbody_pb2.HttpBody(content_type=FORM, data=urlencode(fields).encode())
            ),
            metadata=(("authorization", authorization),) if authorization else None,
        )
        response = await call
        headers = {key: str(value) for key, value in await call.initial_metadata()}
        return int(headers[STATUS_HEADER]), json.loads(response.data)

    async def whoami(self, token: str) -> auth_pb2.WhoAmIResponse:
        stub = auth_pb2_grpc.AuthServiceStub(self.channel)
        response: auth_pb2.WhoAmIResponse = await stub.WhoAmI(
            auth_pb2.WhoAmIRequest(), metadata=(("authorization", f"Bearer {token}"),)
        )
        return response


async def _start(tmp_path: Path, jwks_url: str, **overrides: Any) -> Sso:
    settings = AuthSettings(
        port=0,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}",
        scrypt_n=2**10,
        scrypt_p=1,
        oidc_issuer=ISSUER,
        oidc_jwks_url=jwks_url,
        oidc_audience=AUDIENCE,
        **overrides,
    )
    await bootstrap_admin(settings, "admin@example.com")
    await ensure_service_account(settings, "jobs")
    spec, verifier = await build(settings)
    running = await start_service(settings, spec, verifier)
    return Sso(settings, running, grpc.aio.insecure_channel(f"127.0.0.1:{running.port}"))


@pytest.fixture
async def sso(tmp_path: Path, issuer: Issuer) -> AsyncIterator[Sso]:
    started = await _start(tmp_path, issuer.url)
    yield started
    await started.channel.close()
    await started.running.stop(0)


async def test_a_new_person_signs_in_and_becomes_a_user(sso: Sso, issuer: Issuer) -> None:
    status, document = await sso.token(issuer.sign())
    assert status == 200, document
    assert document["token_type"] == "Bearer"
    who = await sso.whoami(document["access_token"])
    assert (who.email, who.role) == ("ada@example.com", "user")
    status, again = await sso.token(issuer.sign(alg="ES256", kid="ec-1"))
    assert status == 200, again
    assert (await sso.whoami(again["access_token"])).user_id == who.user_id


async def test_an_existing_admin_signs_in_as_admin_and_may_narrow_scopes(
    sso: Sso, issuer: Issuer
) -> None:
    status, document = await sso.token(issuer.sign(email="Admin@Example.com"), scope="read:jobs")
    assert status == 200, document
    assert document["scope"] == "read:jobs"
    who = await sso.whoami(document["access_token"])
    assert (who.email, who.role) == ("admin@example.com", "admin")


async def test_a_single_sign_on_token_carries_the_plan_stored_in_gouache(
    sso: Sso, issuer: Issuer
) -> None:
    status, first = await sso.token(issuer.sign())
    assert status == 200, first
    who = await sso.whoami(first["access_token"])
    assert who.plan == "free"
    admin_key = await bootstrap_admin(sso.settings, "admin@example.com")
    stub = auth_pb2_grpc.AuthServiceStub(sso.channel)
    admin = await stub.IssueToken(
        auth_pb2.IssueTokenRequest(grant_type="client_credentials", api_key=admin_key.api_key)
    )
    await stub.SetUserPlan(
        auth_pb2.SetUserPlanRequest(user_id=who.user_id, plan="pro"),
        metadata=(("authorization", f"Bearer {admin.access_token}"),),
    )
    # A plan claim in the identity provider's JWT is not read: gouache's stored plan wins.
    status, document = await sso.token(issuer.sign(plan="enterprise"))
    assert status == 200, document
    assert (
        jwt.decode(document["access_token"], options={"verify_signature": False})["plan"] == "pro"
    )
    assert (await sso.whoami(document["access_token"])).plan == "pro"


def _other_rsa_key_token() -> str:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "iat": now, "exp": now + 60}
    return jwt.encode(claims, other, algorithm="RS256", headers={"kid": "rsa-1"})


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda idp: idp.sign(aud="someone-else"), "not for audience 'gouache-api'"),
        (lambda idp: idp.sign(iss="https://evil.example.com/"), "not from issuer"),
        (lambda idp: idp.sign(exp=int(time.time()) - 120), "has expired"),
        (lambda idp: idp.sign(kid="rsa-2"), "key 'rsa-2', which the issuer does not publish"),
        (lambda idp: idp.sign(alg="HS256"), "signed with 'HS256'"),
        (lambda idp: idp.sign(email=None), "no 'email' claim"),
        (lambda idp: idp.sign(email="not an email"), "email is not usable"),
        (lambda idp: idp.sign(email_verified=False), "not verified this email"),
        (lambda idp: idp.sign(sub=None), "not valid"),
        (lambda idp: idp.sign(email="jobs@services.gouache.internal"), "cannot sign in by single"),
        (lambda idp: "not-a-jwt", "not a JWT"),
        (lambda idp: _other_rsa_key_token(), "not valid"),
    ],
)
async def test_bad_assertions_are_invalid_grant(
    sso: Sso, issuer: Issuer, make: Any, says: str
) -> None:
    status, document = await sso.token(make(issuer))
    assert status == 400, document
    assert document["error"] == "invalid_grant"
    assert says in document["error_description"]


async def test_scope_beyond_the_role_is_invalid_scope(sso: Sso, issuer: Issuer) -> None:
    status, document = await sso.token(issuer.sign(), scope="admin:*")
    assert (status, document["error"]) == (400, "invalid_scope")


async def test_missing_assertion_and_client_credentials_are_invalid_request(
    sso: Sso, issuer: Issuer
) -> None:
    status, document = await sso.token("")
    assert (status, document["error"]) == (400, "invalid_request")
    assert "assertion is required" in document["error_description"]
    status, document = await sso.token(issuer.sign(), authorization="Basic YTpi")
    assert (status, document["error"]) == (400, "invalid_request")
    assert "no client credentials" in document["error_description"]


async def test_unknown_people_are_refused_when_users_are_not_created(
    tmp_path: Path, issuer: Issuer
) -> None:
    sso = await _start(tmp_path, issuer.url, oidc_create_users=False)
    try:
        status, document = await sso.token(issuer.sign(email="grace@example.com"))
        assert (status, document["error"]) == (400, "invalid_grant")
        assert "has no gouache account; ask an admin" in document["error_description"]
        status, document = await sso.token(issuer.sign(email="admin@example.com"))
        assert status == 200, document
    finally:
        await sso.channel.close()
        await sso.running.stop(0)


async def test_unreachable_issuer_is_temporarily_unavailable(
    tmp_path: Path, issuer: Issuer
) -> None:
    sso = await _start(tmp_path, f"http://127.0.0.1:{free_port()}/jwks")
    try:
        status, document = await sso.token(issuer.sign())
        assert (status, document["error"]) == (503, "temporarily_unavailable")
        assert "keys cannot be fetched" in document["error_description"]
    finally:
        await sso.channel.close()
        await sso.running.stop(0)


async def test_rotated_keys_are_fetched_again_at_most_every_min_refresh(issuer: Issuer) -> None:
    clock = [1000.0]
    verifier = OidcVerifier(
        OidcConfig(issuer=ISSUER, jwks_url=issuer.url, audience=AUDIENCE, min_refresh_s=30),
        http_jwks_fetcher(issuer.url, 5.0),
        monotonic=lambda: clock[0],
    )
    issuer.publish("ec-1")
    try:
        await verifier.verify(issuer.sign(alg="ES256", kid="ec-1"))
        issuer.publish("ec-1", "rsa-1")
        fetches = issuer.fetches
        with pytest.raises(Unauthenticated, match="does not publish"):
            await verifier.verify(issuer.sign())
        assert issuer.fetches == fetches
        clock[0] += 31
        identity = await verifier.verify(issuer.sign())
        assert identity.email == "ada@example.com"
        assert issuer.fetches == fetches + 1
    finally:
        issuer.publish("rsa-1", "ec-1")


def test_jwt_bearer_without_sso_is_unsupported_grant_type() -> None:
    body = urlencode({"grant_type": JWT_BEARER_GRANT, "assertion": "x"}).encode()
    with pytest.raises(OAuth2Error) as caught:
        parse_token_request(FORM, body, None, sso=False)
    assert caught.value.error == "unsupported_grant_type"


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"oidc_issuer": ISSUER}, "GOUACHE_AUTH_OIDC_JWKS_URL, GOUACHE_AUTH_OIDC_AUDIENCE too"),
        (
            {"oidc_issuer": ISSUER, "oidc_jwks_url": "http://idp/jwks", "oidc_audience": "a"},
            "must be https://",
        ),
        ({"oidc_algorithms": "RS256,HS256"}, "HS256 not accepted"),
    ],
)
def test_sso_settings_are_checked(overrides: dict[str, str], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        AuthSettings(**overrides)
