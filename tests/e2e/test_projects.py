"""Projects through the edge of a real mesh, as a team would use them over REST.

One owner makes a project and adds an editor and a viewer; the editor uploads images and runs
a job in it. Then a matrix: every caller (owner, editor, viewer, each of them in their personal
project, a stranger, an admin) against every kind of resource (job, batch, image, style,
webhook, listings, rating, usage), each answer checked. Another project's resources are 404,
never 403, so ids cannot be probed; a viewer reads and is refused every write with 403.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from gouache.cli.mesh import Mesh
from gouache.client import GouacheClient
from tests.e2e.images import small
from tests.e2e.users import new_user_key

pytestmark = pytest.mark.slow

JOB_TIMEOUT_S = 240.0
# gRPC status codes, as the edge's JSON errors carry them.
NOT_FOUND, PERMISSION_DENIED, FAILED_PRECONDITION = 5, 7, 9


@dataclass(frozen=True)
class Caller:
    """A user acting in one project: their token's headers, and who they are."""

    name: str
    user_id: str
    api_key: str
    headers: dict[str, str]


def _token(http: httpx.Client, api_key: str, project: str = "") -> httpx.Response:
    body: dict[str, Any] = {"grant_type": "client_credentials", "api_key": api_key}
    if project:
        body["project"] = project
    return http.post("/v1/auth/token", json=body)


def _caller(http: httpx.Client, name: str, api_key: str, project: str = "") -> Caller:
    issued = _token(http, api_key, project)
    assert issued.status_code == 200, issued.text
    token = issued.json()["access_token"]
    headers = {"authorization": f"Bearer {token}"}
    who = http.get("/v1/auth/whoami", headers=headers)
    assert who.status_code == 200, who.text
    return Caller(name, who.json()["user_id"], api_key, headers)


def _upload(http: httpx.Client, caller: Caller, data: bytes, kind: str) -> dict[str, Any]:
    signed = http.post(
        "/v1/uploads/sign",
        json={"filename": f"{kind}.png", "content_type": "image/png", "kind": kind},
        headers=caller.headers,
    )
    assert signed.status_code == 200, signed.text
    put = http.put(signed.json()["upload_url"], content=data, headers={"content-type": "image/png"})
    assert put.status_code in (200, 201), put.text
    ticket: dict[str, Any] = signed.json()
    return ticket


@dataclass(frozen=True)
class Team:
    """The project, its members' callers and what the editor made in it."""

    project_id: str
    callers: dict[str, Caller]
    content: dict[str, Any]
    style: dict[str, Any]
    job_id: str
    batch_id: str
    webhook_id: str


@pytest.fixture(scope="module")
def http(mesh: Mesh) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=mesh.config.public_url, timeout=60.0) as client:
        yield client


@pytest.fixture(scope="module")
def team(mesh: Mesh, admin: GouacheClient, http: httpx.Client) -> Team:
    base = mesh.config.public_url
    keys = {name: new_user_key(admin, base) for name in ("owner", "editor", "viewer", "stranger")}
    personal = {name: _caller(http, name, key) for name, key in keys.items()}
    made = http.post(
        "/v1/projects",
        json={"name": f"Posters {uuid.uuid4().hex[:6]}"},
        headers=personal["owner"].headers,
    )
    assert made.status_code == 200, made.text
    project_id = made.json()["project"]["project_id"]
    assert project_id.startswith("prj_")
    for name, role in (("editor", "editor"), ("viewer", "viewer")):
        added = http.put(
            f"/v1/projects/{project_id}/members/{personal[name].user_id}",
            json={"role": role},
            headers=personal["owner"].headers,
        )
        assert added.status_code == 200, added.text
    callers = {f"{name}@personal": caller for name, caller in personal.items()}
    for name in ("owner", "editor", "viewer"):
        callers[f"{name}@team"] = _caller(http, name, keys[name], project_id)
    callers["admin"] = Caller("admin", "", "", {"authorization": f"Bearer {admin.token()}"})

    editor = callers["editor@team"]
    content = _upload(http, editor, small("chelsea", 96), "content")
    style = _upload(http, editor, small("hubble_deep_field", 64), "style")
    created = http.post(
        "/v1/jobs",
        json={
            "content_url": content["file_url"],
            "style_urls": [style["file_url"]],
            "model_version": "adain",
        },
        headers=editor.headers,
    )
    assert created.status_code == 200, created.text
    job_id = created.json()["job_id"]
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while True:
        done = http.get(
            f"/v1/jobs/{job_id}:wait", params={"timeout": "30s"}, headers=editor.headers
        )
        assert done.status_code == 200, done.text
        if done.json()["status"] not in ("pending", "running") or time.monotonic() > deadline:
            break
    assert done.json()["status"] == "succeeded", done.text
    batch = http.post(
        "/v1/batches",
        json={
            "content_urls": [content["file_url"]],
            "style_urls": [style["file_url"]],
            "model_version": "adain",
        },
        headers=editor.headers,
    )
    assert batch.status_code == 200, batch.text
    hook = http.post(
        "/v1/webhooks",
        json={
            "url": "http://127.0.0.1:9/hooks",
            "secret": "s" * 32,
            "events": ["job.succeeded"],
        },
        headers=editor.headers,
    )
    assert hook.status_code == 200, hook.text
    return Team(
        project_id=project_id,
        callers=callers,
        content=content,
        style=style,
        job_id=job_id,
        batch_id=batch.json()["batch_id"],
        webhook_id=hook.json()["webhook"]["webhook_id"],
    )


MEMBERS = ("owner@team", "editor@team", "viewer@team")
OUTSIDERS = ("owner@personal", "editor@personal", "viewer@personal", "stranger@personal")


@pytest.mark.parametrize("who", [*MEMBERS, *OUTSIDERS, "admin"])
def test_the_projects_resources_are_seen_by_its_members_only(
    http: httpx.Client, team: Team, who: str
) -> None:
    caller = team.callers[who]
    sees = who in MEMBERS or who == "admin"
    expected = 200 if sees else 404
    image_id = team.content["image_id"]
    for path in (
        f"/v1/jobs/{team.job_id}",
        f"/v1/batches/{team.batch_id}",
        f"/v1/images/{image_id}",
        f"/v1/images/{team.style['image_id']}",
    ):
        answer = http.get(path, headers=caller.headers)
        # Admins read jobs and batches (support, usage), never a user's pictures.
        private = who == "admin" and path.startswith("/v1/images/")
        assert answer.status_code == (404 if private else expected), (who, path, answer.text)
        if not sees or private:
            # Exactly what an id nobody has answers.
            assert answer.json()["code"] == NOT_FOUND, answer.text
    if who == "admin":
        return
    jobs = http.get("/v1/jobs", headers=caller.headers).json().get("jobs", [])
    assert (team.job_id in [job["job_id"] for job in jobs]) == sees, who
    batches = http.get("/v1/batches", headers=caller.headers).json().get("batches", [])
    assert (team.batch_id in [batch["batch_id"] for batch in batches]) == sees, who
    styles = (
        http.get("/v1/styles", params={"curated": "false"}, headers=caller.headers)
        .json()
        .get("styles", [])
    )
    assert any(team.style["image_id"] in style["file_url"] for style in styles) == sees, who
    listed = http.get("/v1/webhooks", headers=caller.headers)
    if who == "viewer@team":
        # Webhooks are managed, not read: listing them needs write:webhooks.
        assert listed.status_code == 403, listed.text
        return
    hooks = listed.json().get("webhooks", [])
    assert (team.webhook_id in [hook["webhook_id"] for hook in hooks]) == sees, who


@pytest.mark.parametrize("who", [*MEMBERS, *OUTSIDERS])
def test_rating_is_for_the_projects_editors(http: httpx.Client, team: Team, who: str) -> None:
    caller = team.callers[who]
    answer = http.post(
        "/v1/feedback", json={"job_id": team.job_id, "rating": 4}, headers=caller.headers
    )
    expected = {"owner@team": 200, "editor@team": 200, "viewer@team": 403}.get(who, 404)
    assert answer.status_code == expected, (who, answer.text)


def test_a_viewer_reads_but_every_write_is_refused(http: httpx.Client, team: Team) -> None:
    viewer = team.callers["viewer@team"]
    writes = [
        ("POST", "/v1/uploads/sign", {"filename": "x.png", "content_type": "image/png"}),
        (
            "POST",
            "/v1/jobs",
            {
                "content_url": team.content["file_url"],
                "style_urls": [team.style["file_url"]],
                "model_version": "adain",
            },
        ),
        ("POST", f"/v1/jobs/{team.job_id}:cancel", {}),
        ("DELETE", f"/v1/jobs/{team.job_id}", None),
        ("DELETE", f"/v1/images/{team.style['image_id']}", None),
        ("DELETE", f"/v1/webhooks/{team.webhook_id}", None),
    ]
    for method, path, body in writes:
        answer = http.request(method, path, json=body, headers=viewer.headers)
        assert answer.status_code == 403, (method, path, answer.text)
        assert answer.json()["code"] == PERMISSION_DENIED, answer.text
    # Nothing was written: the job and its images are all still there.
    editor = team.callers["editor@team"]
    assert http.get(f"/v1/jobs/{team.job_id}", headers=editor.headers).status_code == 200
    assert (
        http.get(f"/v1/images/{team.style['image_id']}", headers=editor.headers).status_code == 200
    )
    # Nor may a viewer make themselves an editor.
    promote = http.put(
        f"/v1/projects/{team.project_id}/members/{viewer.user_id}",
        json={"role": "editor"},
        headers=viewer.headers,
    )
    assert promote.status_code in (403, 404), promote.text


def test_only_members_get_a_token_for_the_project(http: httpx.Client, team: Team) -> None:
    stranger = team.callers["stranger@personal"]
    refused = _token(http, stranger.api_key, team.project_id)
    assert refused.status_code == 404, refused.text
    assert team.project_id in refused.json()["message"]
    malformed = _token(http, stranger.api_key, "prj_not a project")
    assert malformed.status_code == 400, malformed.text
    viewer = _token(http, team.callers["viewer@team"].api_key, team.project_id)
    assert viewer.status_code == 200, viewer.text
    assert not any(scope.startswith("write:") for scope in viewer.json()["scope"].split())


def test_a_removed_member_loses_the_project(
    http: httpx.Client, team: Team, admin: GouacheClient
) -> None:
    owner = team.callers["owner@team"]
    # A second viewer, added and then removed: their new tokens are refused.
    key = new_user_key(admin, str(http.base_url))
    leaver = _caller(http, "leaver", key)
    path = f"/v1/projects/{team.project_id}/members/{leaver.user_id}"
    assert http.put(path, json={"role": "viewer"}, headers=owner.headers).status_code == 200
    assert _token(http, key, team.project_id).status_code == 200
    assert http.delete(path, headers=owner.headers).status_code == 200
    assert _token(http, key, team.project_id).status_code == 404
    # The last owner can neither leave nor be demoted.
    last = http.delete(
        f"/v1/projects/{team.project_id}/members/{owner.user_id}", headers=owner.headers
    )
    assert last.status_code == 400, last.text
    assert last.json()["code"] == FAILED_PRECONDITION, last.text
