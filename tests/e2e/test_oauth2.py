"""Standard OAuth2 against the live mesh, as the README shows it: a form-encoded client
credentials request with HTTP Basic gets a token, Authlib's client gets one too, and a token
scoped down at issue is refused the calls outside its scope."""

from __future__ import annotations

import httpx
from authlib.integrations.httpx_client import OAuth2Client

from gouache.cli.mesh import Mesh
from gouache.client import GouacheClient
from tests.e2e.users import new_user_key


def _client_credentials(api_key: str) -> tuple[str, str]:
    """client_id and client_secret: the two halves of gk_<key_id>_<secret>."""
    key_id, secret = api_key.removeprefix("gk_").split("_")
    return key_id, secret


def test_form_encoded_token_with_basic_and_a_scoped_down_token(
    mesh: Mesh, admin: GouacheClient
) -> None:
    base_url = mesh.config.public_url
    client_id, client_secret = _client_credentials(new_user_key(admin, base_url))
    with httpx.Client(base_url=base_url, timeout=30) as http:
        issued = http.post(
            "/v1/auth/token",
            data={"grant_type": "client_credentials"},
            auth=(client_id, client_secret),
        )
        assert issued.status_code == 200, issued.text
        assert issued.headers["cache-control"] == "no-store"
        full = {"authorization": f"Bearer {issued.json()['access_token']}"}
        assert http.get("/v1/jobs", headers=full).status_code == 200

        narrow = http.post(
            "/v1/auth/token",
            data={"grant_type": "client_credentials", "scope": "read:jobs"},
            auth=(client_id, client_secret),
        )
        assert narrow.status_code == 200, narrow.text
        assert narrow.json()["scope"] == "read:jobs"
        scoped = {"authorization": f"Bearer {narrow.json()['access_token']}"}
        assert http.get("/v1/jobs", headers=scoped).status_code == 200
        refused = http.post(
            "/v1/jobs",
            json={"content_url": "skimage:astronaut", "style_urls": ["skimage:coffee"]},
            headers=scoped,
        )
        assert refused.status_code == 403, refused.text
        assert refused.json()["code"] == 7
        assert "write:jobs" in refused.json()["message"]

        beyond = http.post(
            "/v1/auth/token",
            data={"grant_type": "client_credentials", "scope": "admin:*"},
            auth=(client_id, client_secret),
        )
        assert beyond.status_code == 400
        assert beyond.json()["error"] == "invalid_scope"


def test_authlib_client_gets_a_token_and_calls_the_api(mesh: Mesh, admin: GouacheClient) -> None:
    base_url = mesh.config.public_url
    client_id, client_secret = _client_credentials(new_user_key(admin, base_url))
    with OAuth2Client(
        client_id=client_id,
        client_secret=client_secret,
        scope="read:jobs read:models",
        base_url=base_url,
        timeout=30,
    ) as client:
        token = client.fetch_token(f"{base_url}/v1/auth/token", grant_type="client_credentials")
        assert token["scope"] == "read:jobs read:models"
        models = client.get("/v1/models")
        assert models.status_code == 200, models.text
