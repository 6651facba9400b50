"""The audit log through the edge on the whole mesh: auth's own actions (a user and an API key
created, a key revoked), other services' (an image and a job deleted, an admin reading
someone's usage), read by an admin with filters and pages; refused to a user."""

from __future__ import annotations

import httpx

from gouache.cli.mesh import Mesh
from gouache.client import GouacheClient
from tests.e2e.images import small
from tests.e2e.test_erasure import _http, _image_id, _new_user


def _audit(http: httpx.Client, **params: str) -> list[dict[str, str]]:
    answer = http.get("/v1/audit", params=params)
    assert answer.status_code == 200, answer.text
    events: list[dict[str, str]] = answer.json().get("events", [])
    return events


def test_security_relevant_actions_are_audited(mesh: Mesh, admin: GouacheClient) -> None:
    user_id, key = _new_user(admin, mesh.config.public_url)
    with GouacheClient(mesh.config.public_url, key) as user:
        content = user.upload(small("astronaut", 40), filename="a.png")
        style = user.upload(small("coffee", 40), filename="c.png", kind="style")
        job = user.create_job(content, [style], model_version="adain", no_cache=True)
        assert user.wait(job.job_id, timeout_s=120).status == "succeeded"
        token = user.token()
    with _http(mesh, token) as http:
        assert http.delete(f"/v1/images/{_image_id(content)}").status_code == 200
        assert http.delete(f"/v1/jobs/{job.job_id}").status_code == 200
        extra = http.post("/v1/api-keys", json={"name": "spare"})
        assert extra.status_code == 200, extra.text
        spare = extra.json()["key_id"]
        assert http.delete(f"/v1/api-keys/{spare}").status_code == 200
        # Users do not read the audit log.
        assert http.get("/v1/audit").status_code == 403
    with _http(mesh, admin.token()) as http:
        assert http.get("/v1/usage", params={"user_id": user_id}).status_code == 200
        about = [e for e in _audit(http, page_size="100") if e.get("subject_id") == user_id]
        actions = {e["action"] for e in about}
        assert {"user.created", "api_key.created", "image.deleted", "job.deleted"} <= actions
        assert "usage.read_other" in actions
        deleted = next(e for e in about if e["action"] == "job.deleted")
        assert (deleted["actor_id"], deleted["target"]) == (user_id, f"job:{job.job_id}")
        assert deleted["service"]  # the jobs service's account reported it
        revoked = _audit(http, action="api_key.revoked", actor_id=user_id)
        assert [e["target"] for e in revoked] == [f"api_key:{spare}"]
        first = http.get("/v1/audit", params={"page_size": "1"}).json()
        assert len(first["events"]) == 1
        assert first["next_page_token"]
        second = http.get(
            "/v1/audit", params={"page_size": "1", "page_token": first["next_page_token"]}
        ).json()
        assert second["events"][0]["event_id"] != first["events"][0]["event_id"]
        bad = http.get("/v1/audit", params={"page_token": "nope"})
        assert bad.status_code == 400
        assert "page_token" in bad.json()["message"]
