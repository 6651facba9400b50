"""The project calls through the edge, as a team lead uses them over REST and the SDK: make a
project, add a member, list and read it, act in it with a token (JSON, the OAuth2 form and
GouacheClient(project=)), and the refusals an owner meets, with their HTTP statuses."""

from __future__ import annotations

import json

import httpx
import pytest

from gouache.cli.main import main
from gouache.cli.mesh import Mesh
from gouache.client import GouacheClient
from tests.e2e.users import new_user_key


def test_projects_over_rest(mesh: Mesh, admin: GouacheClient) -> None:
    base_url = mesh.config.public_url
    owner_key = new_user_key(admin, base_url)
    member_key = new_user_key(admin, base_url)
    with (
        GouacheClient(base_url, owner_key) as owner,
        GouacheClient(base_url, member_key) as member,
        httpx.Client(base_url=base_url, timeout=30) as http,
    ):
        me = {"authorization": f"Bearer {owner.token()}"}
        theirs = {"authorization": f"Bearer {member.token()}"}
        member_id = http.get("/v1/auth/whoami", headers=theirs).json()["user_id"]
        made = http.post("/v1/projects", json={"name": "Launch"}, headers=me)
        assert made.status_code == 200, made.text
        project_id = made.json()["project"]["project_id"]
        members = f"/v1/projects/{project_id}/members"
        put = http.put(f"{members}/{member_id}", json={"role": "viewer"}, headers=me)
        assert put.status_code == 200, put.text
        assert put.json()["member"]["role"] == "viewer"

        listed = http.get("/v1/projects", headers=me).json()["projects"]
        assert [(p["project_id"], p["role"]) for p in listed][1:] == [(project_id, "owner")]
        assert listed[0]["personal"] is True
        detail = http.get(f"/v1/projects/{project_id}", headers=me).json()
        assert {m["user_id"]: m["role"] for m in detail["members"]}[member_id] == "viewer"

        # The member acts in the project: a viewer's token, from JSON, the form and the SDK.
        issued = http.post(
            "/v1/auth/token",
            json={"grant_type": "client_credentials", "api_key": member_key, "project": project_id},
        )
        assert issued.status_code == 200, issued.text
        assert (issued.json()["project_id"], issued.json()["project_role"]) == (
            project_id,
            "viewer",
        )
        assert "write:jobs" not in issued.json()["scope"].split()
        key_id, secret = member_key.removeprefix("gk_").split("_")
        form = http.post(
            "/v1/auth/token",
            data={"grant_type": "client_credentials", "project": project_id},
            auth=(key_id, secret),
        )
        assert form.status_code == 200, form.text
        with GouacheClient(base_url, member_key, project=project_id) as acting:
            who = http.get(
                "/v1/auth/whoami", headers={"authorization": f"Bearer {acting.token()}"}
            ).json()
            assert (who["project_id"], who["project_role"]) == (project_id, "viewer")
            assert acting.get_project(project_id).project.role == "viewer"

        # Refusals, each with its status and a message that says what to do.
        refusals = [
            (http.put(f"{members}/{member_id}", json={"role": "boss"}, headers=me), 400, "role must be"),
            (http.put(f"{members}/usr_nobody", json={"role": "viewer"}, headers=me), 404, "does not exist"),
            (http.put(f"{members}/{member_id}", json={"role": "owner"}, headers=theirs), 403, "only its owners"),
            (http.delete(f"{members}/usr_nobody", headers=me), 404, "not a member"),
            (http.put(f"/v1/projects/{member_id}/members/{member_id}", json={"role": "viewer"}, headers=theirs), 400, "personal project"),
            (http.post("/v1/projects", json={"name": "x" * 101}, headers=me), 400, "at most 100"),
            (http.get("/v1/projects/prj_nope", headers=me), 400, "not a project id"),
            (http.post("/v1/auth/token", data={"grant_type": "client_credentials", "project": "prj_01JDX0ZQ3N4M5P6Q7R8S9T0V1W"}, auth=(key_id, secret)), 400, "no project prj_01JDX0ZQ3N4M5P6Q7R8S9T0V1W"),
        ]  # fmt: skip
        for response, status, says in refusals:
            assert response.status_code == status, response.text
            body = response.json()
            assert says in body.get("message", body.get("error_description", "")), body
        owner_id = http.get("/v1/auth/whoami", headers=me).json()["user_id"]
        last = http.delete(f"{members}/{owner_id}", headers=me)
        assert last.status_code == 400, last.text
        assert "last owner" in last.json()["message"]
        left = http.delete(f"{members}/{member_id}", headers=theirs)
        assert left.status_code == 200, left.text
        gone = http.get(f"/v1/projects/{project_id}", headers=theirs)
        assert gone.status_code == 404, gone.text


def test_projects_from_the_cli(
    mesh: Mesh, admin: GouacheClient, capsys: pytest.CaptureFixture[str]
) -> None:
    base_url = mesh.config.public_url
    owner_key = new_user_key(admin, base_url)
    with GouacheClient(base_url, new_user_key(admin, base_url)) as other:
        other_id = other.list_projects()[0].project_id  # the personal project: the user's id
    api = ["--url", base_url, "--api-key", owner_key]

    def run(*argv: str) -> tuple[int, str, str]:
        status = main(["projects", *api, *argv])
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    status, out, _ = run("create", "Launch")
    assert status == 0
    project_id = json.loads(out)["project_id"]
    status, out, _ = run("add", project_id, other_id, "--role", "viewer")
    assert (status, json.loads(out)["role"]) == (0, "viewer")
    status, out, _ = run("show", project_id)
    assert {m["user_id"] for m in json.loads(out)["members"]} == {other_id, mine(out)}
    status, out, _ = run("list")
    assert [p["project_id"] for p in json.loads(out)["projects"]][1:] == [project_id]
    status, out, err = run("remove", project_id, mine(run("show", project_id)[1]))
    assert status == 1
    assert "last owner" in err + out
    assert main(["token", *api, "--project", project_id]) == 0
    token = capsys.readouterr().out.strip()
    who = httpx.get(f"{base_url}/v1/auth/whoami", headers={"authorization": f"Bearer {token}"})
    assert who.json()["project_id"] == project_id


def mine(shown: str) -> str:
    """The owner's user id in `gouache projects show`'s output."""
    members = json.loads(shown)["members"]
    return str(next(m["user_id"] for m in members if m["role"] == "owner"))
