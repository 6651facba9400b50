"""The product requirements' REST flow through Envoy, as a script or a browser would use it."""

from __future__ import annotations

import uuid

import httpx
import pytest

from gouache import catalogue
from gouache.cli.mesh import Mesh
from gouache.client import ApiError, GouacheClient
from gouache.imaging.codec import validate_and_decode
from tests.e2e.images import small

pytestmark = pytest.mark.slow


def _user(admin: GouacheClient, base_url: str) -> GouacheClient:
    """A fresh non-admin user with an API key, created through the REST API."""
    email = f"user-{uuid.uuid4().hex[:8]}@example.com"
    headers = {"authorization": f"Bearer {admin.token()}"}
    with httpx.Client(base_url=base_url, headers=headers) as http:
        created = http.post("/v1/users", json={"email": email, "password": "correct horse battery"})
        assert created.status_code == 200, created.text
        user_id = created.json()["user_id"]
        key = http.post("/v1/api-keys", json={"name": "e2e", "user_id": user_id})
        assert key.status_code == 200, key.text
    return GouacheClient(base_url, key.json()["api_key"])


def test_sign_put_create_poll_download_feedback(mesh: Mesh, admin: GouacheClient) -> None:
    user = _user(admin, mesh.config.public_url)
    content_url = user.upload(small("chelsea", 72), filename="cat.png")
    style_url = user.upload(small("hubble_deep_field", 64), filename="stars.png", kind="style")
    key = uuid.uuid4().hex
    params = {"alpha": 0.8, "seed": 7, "tile_size": 64, "overlap": 16}
    created = user.create_job(
        content_url, [style_url], model_version="gatys-fast", params=params, idempotency_key=key
    )
    assert created["status"] == "pending"
    assert created["job_id"].startswith("job_")
    again = user.create_job(
        content_url, [style_url], model_version="gatys-fast", params=params, idempotency_key=key
    )
    assert again["job_id"] == created["job_id"]

    result = user.wait(created["job_id"], timeout_s=240)
    assert result.status == "succeeded", result.raw
    assert result.model_version == "gatys.lite0-fast"
    assert result.latency_ms > 0
    assert result.result_url
    image = validate_and_decode(user.download(result.result_url))
    assert (image.width, image.height) == (72, 72)

    feedback = user.submit_feedback(created["job_id"], 5, "lovely")
    assert feedback["rating"] == 5


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"style_urls": ["x"], "params": {"alpha": 1.7}}, 400, "alpha"),
        ({"style_urls": []}, 400, "style"),
    ],
)
def test_bad_job_parameters_get_400_with_json(
    mesh: Mesh, admin: GouacheClient, body: dict[str, object], status: int, needle: str
) -> None:
    content_url = admin.upload(small("coffee", 48), filename="coffee.png")
    payload = {"content_url": content_url, "model_version": "gatys-fast", **body}
    response = httpx.post(
        f"{mesh.config.public_url}/v1/jobs",
        json=payload,
        headers={"authorization": f"Bearer {admin.token()}"},
    )
    assert response.status_code == status, response.text
    assert needle in response.json()["message"]


def test_malformed_json_is_400(mesh: Mesh, admin: GouacheClient) -> None:
    response = httpx.post(
        f"{mesh.config.public_url}/v1/jobs",
        content=b'{"content_url": ',
        headers={"authorization": f"Bearer {admin.token()}", "content-type": "application/json"},
    )
    assert response.status_code == 400


def test_unknown_job_is_404(mesh: Mesh, admin: GouacheClient) -> None:
    with pytest.raises(ApiError) as caught:
        admin.get_job("job_01ARZ3NDEKTSV4RRFFQ69G5FAV")
    assert caught.value.status == 404


def test_missing_and_forged_tokens_are_401(mesh: Mesh) -> None:
    url = f"{mesh.config.public_url}/v1/jobs/job_01ARZ3NDEKTSV4RRFFQ69G5FAV"
    assert httpx.get(url).status_code == 401
    forged = "eyJhbGciOiJFZERTQSIsImtpZCI6IngifQ.eyJzdWIiOiJ1c3JfMSJ9.c2lnbmF0dXJl"
    assert httpx.get(url, headers={"authorization": f"Bearer {forged}"}).status_code == 401


def test_wrong_scope_is_403(mesh: Mesh, admin: GouacheClient) -> None:
    assert admin._api_key
    token = httpx.post(
        f"{mesh.config.public_url}/v1/auth/token",
        json={
            "grant_type": "client_credentials",
            "api_key": admin._api_key,
            "scopes": ["read:jobs"],
        },
    ).json()["access_token"]
    response = httpx.post(
        f"{mesh.config.public_url}/v1/jobs",
        json={"content_url": "x", "style_urls": ["y"]},
        headers={"authorization": f"Bearer {token}"},
    )
    assert response.status_code == 403, response.text


def test_another_users_job_and_image_are_404(mesh: Mesh, admin: GouacheClient) -> None:
    alice = _user(admin, mesh.config.public_url)
    bob = _user(admin, mesh.config.public_url)
    content_url = alice.upload(small("astronaut", 48), filename="a.png")
    style_url = alice.upload(small("hubble_deep_field", 48), filename="s.png", kind="style")
    job = alice.create_job(content_url, [style_url], model_version="gatys-fast")
    with pytest.raises(ApiError) as caught:
        bob.get_job(job["job_id"])
    assert caught.value.status == 404
    with pytest.raises(ApiError) as used:
        bob.create_job(content_url, [style_url], model_version="gatys-fast")
    assert used.value.status == 404
    alice.wait(job["job_id"], timeout_s=240)


def test_wait_long_polls_until_the_job_is_final(mesh: Mesh, admin: GouacheClient) -> None:
    content_url = admin.upload(small("chelsea", 48), filename="cat.png")
    style_url = admin.upload(small("hubble_deep_field", 48), filename="stars.png", kind="style")
    created = admin.create_job(content_url, [style_url], model_version="adain", no_cache=True)
    url = f"{mesh.config.public_url}/v1/jobs/{created['job_id']}:wait"
    headers = {"authorization": f"Bearer {admin.token()}"}
    answered = httpx.get(url, params={"timeout": "50s"}, headers=headers, timeout=60)
    assert answered.status_code == 200, answered.text
    assert answered.json()["status"] == "succeeded"
    assert answered.json()["result_url"]

    too_long = httpx.get(url, params={"timeout": "61s"}, headers=headers)
    assert too_long.status_code == 400
    assert "timeout" in too_long.text
    not_a_duration = httpx.get(url, params={"timeout": "soon"}, headers=headers)
    assert not_a_duration.status_code == 400


def test_a_preview_runs_a_one_pass_model_small(mesh: Mesh, admin: GouacheClient) -> None:
    content_url = admin.upload(small("chelsea", 96), filename="cat.png")
    style_url = admin.upload(small("hubble_deep_field", 48), filename="stars.png", kind="style")
    headers = {"authorization": f"Bearer {admin.token()}"}
    body = {
        "content_url": content_url,
        "style_urls": [style_url],
        "model_version": "gatys",
        "lane": "preview",
        "params": {"max_side": 40},
        "no_cache": True,
    }
    created = httpx.post(f"{mesh.config.public_url}/v1/jobs", json=body, headers=headers)
    assert created.status_code == 200, created.text
    # gatys optimises for tens of seconds; the preview runs the default one-pass model.
    assert created.json()["model_version"] == catalogue.DEFAULT
    result = admin.wait(created.json()["job_id"], timeout_s=120)
    assert result.status == "succeeded", result.raw
    assert result.raw["lane"] == "preview"
    assert result.result_url
    image = validate_and_decode(admin.download(result.result_url))
    assert (image.width, image.height) == (40, 40)

    body["lane"] = "draft"
    refused = httpx.post(f"{mesh.config.public_url}/v1/jobs", json=body, headers=headers)
    assert refused.status_code == 400
    assert "lane" in refused.text
