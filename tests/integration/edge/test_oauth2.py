"""Standard OAuth2 through the real edge: the auth service behind Envoy answers a form-encoded
client credentials request (body or HTTP Basic) at POST /v1/auth/token in RFC 6749 form,
the JSON form on the same path keeps working, and a real OAuth2 client (Authlib) gets a
token and uses it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client

from gouache.edge import Upstream
from gouache.runtime.server import start_service
from services.auth.bootstrap import bootstrap_admin
from services.auth.server import build
from services.auth.settings import AuthSettings
from tests.fixtures.envoy import EdgeFactory, free_port

TOKEN = "/v1/auth/token"
FORM = "application/x-www-form-urlencoded"
USER_SCOPES = "read:jobs write:jobs read:models write:webhooks"


@dataclass(frozen=True)
class Deployment:
    base_url: str
    admin_key: str
    user_key: str

    @staticmethod
    def split(api_key: str) -> tuple[str, str]:
        key_id, secret = api_key.removeprefix("gk_").split("_")
        return key_id, secret


@pytest.fixture(scope="module")
async def deployment(
    envoy_edge: EdgeFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Deployment]:
    """The real auth service (SQLite, a cheap KDF) with an admin and a user, behind Envoy."""
    state: Path = tmp_path_factory.mktemp("auth")
    settings = AuthSettings(
        port=0,
        database_url=f"sqlite+aiosqlite:///{state / 'auth.db'}",
        scrypt_n=2**10,
        scrypt_p=1,
        max_failed_logins=3,
    )
    admin = await bootstrap_admin(settings, "admin@example.com")
    spec, verifier = await build(settings)
    running = await start_service(settings, spec, verifier)
    try:
        edge = envoy_edge(
            Upstream("127.0.0.1", free_port()),
            Upstream("127.0.0.1", free_port()),
            auth=Upstream("127.0.0.1", running.port),
        )
        async with httpx.AsyncClient(base_url=edge.base_url, timeout=30) as http:
            token = (
                await http.post(
                    TOKEN, json={"grant_type": "client_credentials", "api_key": admin.api_key}
                )
            ).json()["access_token"]
            admin_auth = {"authorization": f"Bearer {token}"}
            created = await http.post(
                "/v1/users",
                json={"email": "user@example.com", "password": "a long enough password"},
                headers=admin_auth,
            )
            assert created.status_code == 200, created.text
            user_token = (
                await http.post(
                    TOKEN,
                    json={
                        "grant_type": "password",
                        "email": "user@example.com",
                        "password": "a long enough password",
                    },
                )
            ).json()["access_token"]
            key = await http.post(
                "/v1/api-keys",
                json={"name": "oauth2"},
                headers={"authorization": f"Bearer {user_token}"},
            )
            assert key.status_code == 200, key.text
        yield Deployment(edge.base_url, admin.api_key, key.json()["api_key"])
    finally:
        await running.stop(0)


@pytest.fixture
async def http(deployment: Deployment) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=deployment.base_url, timeout=30) as client:
        yield client


async def _whoami(http: httpx.AsyncClient, token: str) -> httpx.Response:
    return await http.get("/v1/auth/whoami", headers={"authorization": f"Bearer {token}"})


def _assert_rfc_token(response: httpx.Response, scope: str) -> str:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    assert "x-gouache-http-status" not in response.headers
    document = response.json()
    assert set(document) == {"access_token", "token_type", "expires_in", "scope"}
    assert (document["token_type"], document["scope"]) == ("Bearer", scope)
    assert isinstance(document["expires_in"], int)
    assert document["expires_in"] > 0
    token: str = document["access_token"]
    return token


async def test_form_body_credentials_get_a_token_that_works(
    http: httpx.AsyncClient, deployment: Deployment
) -> None:
    key_id, secret = deployment.split(deployment.user_key)
    response = await http.post(
        TOKEN,
        data={"grant_type": "client_credentials", "client_id": key_id, "client_secret": secret},
    )
    token = _assert_rfc_token(response, USER_SCOPES)
    who = await _whoami(http, token)
    assert who.status_code == 200
    assert who.json()["email"] == "user@example.com"


async def test_http_basic_gets_a_token_that_works(
    http: httpx.AsyncClient, deployment: Deployment
) -> None:
    key_id, secret = deployment.split(deployment.user_key)
    response = await http.post(
        TOKEN,
        content=b"grant_type=client_credentials",
        headers={"content-type": f"{FORM};charset=UTF-8"},
        auth=(key_id, secret),
    )
    token = _assert_rfc_token(response, USER_SCOPES)
    assert (await _whoami(http, token)).status_code == 200


async def test_json_form_on_the_same_path_is_unchanged(
    http: httpx.AsyncClient, deployment: Deployment
) -> None:
    response = await http.post(
        TOKEN,
        json={
            "grant_type": "client_credentials",
            "api_key": deployment.user_key,
            "scope": "read:jobs",
        },
    )
    assert response.status_code == 200
    assert response.json()["scope"] == "read:jobs"
    bad = await http.post(TOKEN, json={"grant_type": "client_credentials", "api_key": "gk_x"})
    assert bad.status_code == 400
    assert bad.json()["code"] == 3


async def test_scoped_down_token_is_refused_outside_its_scope(
    http: httpx.AsyncClient, deployment: Deployment
) -> None:
    key_id, secret = deployment.split(deployment.admin_key)
    narrow = _assert_rfc_token(
        await http.post(
            TOKEN,
            data={"grant_type": "client_credentials", "scope": "read:jobs"},
            auth=(key_id, secret),
        ),
        "read:jobs",
    )
    user = {"email": "another@example.com", "password": "a long enough password"}
    refused = await http.post("/v1/users", json=user, headers={"authorization": f"Bearer {narrow}"})
    assert refused.status_code == 403
    assert refused.json()["code"] == 7
    assert "admin:*" in refused.json()["message"]
    full = _assert_rfc_token(
        await http.post(TOKEN, data={"grant_type": "client_credentials"}, auth=(key_id, secret)),
        "read:jobs write:jobs read:models write:models write:webhooks admin:*",
    )
    created = await http.post("/v1/users", json=user, headers={"authorization": f"Bearer {full}"})
    assert created.status_code == 200, created.text


@pytest.mark.parametrize(
    ("body", "basic", "status", "error"),
    [
        ({"grant_type": "client_credentials", "scope": "admin:*"}, True, 400, "invalid_scope"),
        ({"grant_type": "client_credentials", "scope": "nope"}, True, 400, "invalid_scope"),
        ({"grant_type": "authorization_code", "code": "x"}, True, 400, "unsupported_grant_type"),
        ({"client_id": "0123456789abcdef"}, False, 400, "invalid_request"),
        ({"grant_type": "client_credentials"}, False, 401, "invalid_client"),
        ({"grant_type": "client_credentials", "client_id": "0123456789abcdef"}, False, 400, "invalid_client"),
    ],
)  # fmt: skip
async def test_errors_answer_in_rfc_6749_form(
    http: httpx.AsyncClient,
    deployment: Deployment,
    body: dict[str, str],
    basic: bool,
    status: int,
    error: str,
) -> None:
    response = await http.post(
        TOKEN, data=body, auth=deployment.split(deployment.user_key) if basic else None
    )
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    assert "x-gouache-http-status" not in response.headers
    document = response.json()
    assert set(document) == {"error", "error_description"}
    assert document["error"] == error
    assert document["error_description"]
    if status == 401:
        assert response.headers["www-authenticate"].startswith('Basic realm="gouache"')


async def test_wrong_secret_by_basic_is_401_with_a_challenge_then_locked_out(
    http: httpx.AsyncClient, deployment: Deployment
) -> None:
    key_id, secret = deployment.split(deployment.user_key)
    # A key of its own, so the lockout leaves the other tests' key alone.
    user_token = (
        await http.post(TOKEN, data={"grant_type": "client_credentials"}, auth=(key_id, secret))
    ).json()["access_token"]
    other = await http.post(
        "/v1/api-keys", json={"name": "locked"}, headers={"authorization": f"Bearer {user_token}"}
    )
    other_id, other_secret = deployment.split(other.json()["api_key"])
    for _ in range(3):
        wrong = await http.post(
            TOKEN, data={"grant_type": "client_credentials"}, auth=(other_id, "b" * 52)
        )
        assert wrong.status_code == 401
        assert wrong.json()["error"] == "invalid_client"
        assert wrong.headers["www-authenticate"] == 'Basic realm="gouache", charset="UTF-8"'
    locked = await http.post(
        TOKEN, data={"grant_type": "client_credentials"}, auth=(other_id, other_secret)
    )
    assert locked.status_code == 429
    assert locked.json()["error"] == "temporarily_unavailable"
    assert int(locked.headers["retry-after"]) >= 1


async def test_authlib_client_credentials_basic_and_post(deployment: Deployment) -> None:
    """Authlib, a widely used OAuth2 client, with both client authentication methods."""
    key_id, secret = deployment.split(deployment.user_key)
    for method in ("client_secret_basic", "client_secret_post"):
        async with AsyncOAuth2Client(
            client_id=key_id,
            client_secret=secret,
            scope="read:jobs read:models",
            token_endpoint_auth_method=method,
            base_url=deployment.base_url,
            timeout=30,
        ) as client:
            token = await client.fetch_token(
                f"{deployment.base_url}{TOKEN}", grant_type="client_credentials"
            )
            assert token["token_type"] == "Bearer"
            assert token["scope"] == "read:jobs read:models"
            who = await client.get("/v1/auth/whoami")
            assert who.status_code == 200
            assert who.json()["scopes"] == ["read:jobs", "read:models"]
    async with AsyncOAuth2Client(
        client_id=key_id, client_secret="c" * 52, base_url=deployment.base_url, timeout=30
    ) as client:
        with pytest.raises(OAuthError) as caught:
            await client.fetch_token(
                f"{deployment.base_url}{TOKEN}", grant_type="client_credentials"
            )
    assert caught.value.error == "invalid_client"
