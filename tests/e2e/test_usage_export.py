"""Usage for invoicing through the edge: a user's jobs in compute seconds and megapixels,
per month, and the CSV export (GET /v1/usage:export) holding exactly those jobs."""

from __future__ import annotations

import csv
import io
import time
import uuid
from datetime import UTC, datetime

import httpx

from gouache.cli.mesh import Mesh
from gouache.client import GouacheClient
from tests.e2e.images import small


def _new_user(admin: GouacheClient, base_url: str) -> tuple[str, str]:
    email = f"usage-{uuid.uuid4().hex[:8]}@example.com"
    headers = {"authorization": f"Bearer {admin.token()}"}
    with httpx.Client(base_url=base_url, headers=headers) as http:
        created = http.post("/v1/users", json={"email": email, "password": "correct horse battery"})
        assert created.status_code == 200, created.text
        user_id = str(created.json()["user_id"])
        key = http.post("/v1/api-keys", json={"name": "usage", "user_id": user_id})
        assert key.status_code == 200, key.text
    return user_id, str(key.json()["api_key"])


def _export(mesh: Mesh, token: str, **params: str) -> httpx.Response:
    return httpx.get(
        f"{mesh.config.public_url}/v1/usage:export",
        params=params,
        headers={"authorization": f"Bearer {token}"},
        timeout=30,
    )


def test_the_csv_of_the_month_is_exactly_the_jobs_run(mesh: Mesh, admin: GouacheClient) -> None:
    user_id, key = _new_user(admin, mesh.config.public_url)
    with GouacheClient(mesh.config.public_url, key) as user:
        content = user.upload(small("astronaut", 40), filename="a.png")
        style = user.upload(small("coffee", 40), filename="c.png", kind="style")
        ran = user.create_job(content, [style], model_version="adain")
        assert user.wait(ran.job_id, timeout_s=120).status == "succeeded"
        hit = user.create_job(content, [style], model_version="adain")
        assert hit.cached
        user_token = user.token()

    month = datetime.now(UTC).strftime("%Y-%m")
    deadline = time.monotonic() + 30
    while True:
        records = admin.get_usage(user_id=user_id, group_by="month")
        if sum(r.jobs_succeeded for r in records) == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    (record,) = records
    assert (record.period, record.jobs_succeeded, record.jobs_failed, record.jobs_cached) == (
        month,
        2,
        0,
        1,
    )
    # The one job that ran was measured by its worker; the cached one added nothing.
    assert record.compute_seconds > 0
    assert record.gpu_seconds in (0.0, record.compute_seconds)

    answer = _export(mesh, admin.token(), user_id=user_id, group_by="month")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(answer.text, newline="")))
    assert rows[0][:4] == ["period", "project_id", "user_id", "model_version"]
    (row,) = rows[1:]
    # Jobs made without a project are the user's personal project's (its id is theirs).
    assert row[:7] == [month, user_id, user_id, record.model_version, "2", "0", "1"]
    assert row[7] == "0.001600"  # one 40 x 40 result; the cached answer is not made again
    assert float(row[8]) == record.compute_seconds
    assert float(row[9]) == record.gpu_seconds

    # The user may export their own usage, not someone else's; a bad period is a 400.
    own = _export(mesh, user_token)
    assert own.status_code == 200, own.text
    assert {r[2] for r in list(csv.reader(io.StringIO(own.text)))[1:]} == {user_id}
    theirs = _export(mesh, user_token, user_id="usr_someone_else")
    assert theirs.status_code == 403, theirs.text
    assert "only admins" in theirs.json()["message"]
    weekly = _export(mesh, admin.token(), group_by="week")
    assert weekly.status_code == 400, weekly.text
    assert "group_by must be day or month" in weekly.json()["message"]


def test_a_projects_owner_exports_its_members_usage(mesh: Mesh, admin: GouacheClient) -> None:
    base = mesh.config.public_url
    owner_id, owner_key = _new_user(admin, base)
    member_id, member_key = _new_user(admin, base)
    with GouacheClient(base, owner_key) as owner:
        project_id = owner.create_project(f"Invoices {uuid.uuid4().hex[:6]}").project_id
        owner.put_project_member(project_id, member_id, "editor")
    with GouacheClient(base, member_key, project=project_id) as member:
        content = member.upload(small("astronaut", 40), filename="a.png")
        style = member.upload(small("coffee", 40), filename="c.png", kind="style")
        ran = member.create_job(content, [style], model_version="adain")
        done = member.wait(ran.job_id, timeout_s=120)
        assert done.status == "succeeded"
        assert (done.project_id, done.user_id) == (project_id, member_id)
        member_token = member.token()
    with GouacheClient(base, owner_key, project=project_id) as owner:
        owner_token = owner.token()

    deadline = time.monotonic() + 30
    while True:
        answer = _export(mesh, owner_token, project_id=project_id)
        assert answer.status_code == 200, answer.text
        rows = list(csv.reader(io.StringIO(answer.text, newline="")))[1:]
        if rows or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    # The member's job, in the project, billed to the project; the owner ran none.
    assert [row[1:5] for row in rows] == [[project_id, member_id, done.model_version, "1"]]
    assert owner_id not in {row[2] for row in rows}
    # The member reads their own usage, not the project's (they are no owner).
    own = _export(mesh, member_token)
    assert [row[1:3] for row in list(csv.reader(io.StringIO(own.text)))[1:]] == [
        [project_id, member_id]
    ]
    refused = _export(mesh, member_token, project_id=project_id)
    assert refused.status_code == 403, refused.text
    assert "needs its owner role" in refused.json()["message"]
    elsewhere = _export(mesh, owner_token, project_id=f"{owner_id}")
    assert elsewhere.status_code == 403, elsewhere.text
