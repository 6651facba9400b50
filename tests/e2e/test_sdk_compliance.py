"""Deleting, erasing and the audit log through the SDK and the CLI on the embedded mesh:
a user deletes a job and an image (REST and gRPC through the edge), an admin reads both
deletions back from the audit log, a user's erasure runs to "done", and the `gouache jobs
delete | images delete | users erase | audit` commands do the same from a terminal."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from gouache.cli.main import main
from gouache.cli.mesh import Mesh
from gouache.client import (
    NO_RETRIES,
    AsyncGouacheGrpcClient,
    AuditEvent,
    Erasure,
    GouacheClient,
    GouacheGrpcClient,
    NotFoundError,
    PermissionDeniedError,
    UnauthenticatedError,
)
from gouache.client.sync_api import SyncApi
from gouache.runtime.audit import pseudonym
from tests.e2e.images import small
from tests.e2e.test_erasure import _image_id, _new_user

pytestmark = pytest.mark.slow


def _edge(mesh: Mesh) -> str:
    return f"127.0.0.1:{mesh.config.ports.envoy}"


def _stylized(client: SyncApi) -> tuple[str, str, str]:
    """A succeeded job's id, its content and style file URLs."""
    content = client.upload(small("astronaut", 40), filename="a.png")
    style = client.upload(small("coffee", 40), filename="c.png", kind="style")
    job = client.create_job(content, [style], model_version="adain", no_cache=True)
    assert client.wait(job.job_id, timeout_s=120).status == "succeeded"
    return job.job_id, content, style


def _audited(admin: GouacheClient, since: datetime, action: str, target: str) -> AuditEvent:
    (event,) = [
        e for e in admin.iter_audit_events(since=since, action=action) if e.target == target
    ]
    return event


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_delete_a_job_and_an_image_and_read_the_audit_log(
    mesh: Mesh, admin: GouacheClient, transport: str
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=5)
    user_id, key = _new_user(admin, mesh.config.public_url)
    client: SyncApi = (
        GouacheClient(mesh.config.public_url, key)
        if transport == "rest"
        else GouacheGrpcClient(_edge(mesh), key)
    )
    with client:
        job_id, content, _ = _stylized(client)
        result_id = client.get_job(job_id).result_image_id
        assert client.delete_job(job_id) == job_id
        with pytest.raises(NotFoundError):
            client.get_job(job_id)
        with pytest.raises(NotFoundError):
            client.delete_job(job_id)
        image_id = _image_id(content)
        assert client.delete_image(image_id) == image_id
        with pytest.raises(NotFoundError):
            client.delete_image(image_id)
        with pytest.raises(PermissionDeniedError):
            client.list_audit_events()
    # The job's result went with it.
    with pytest.raises(NotFoundError):
        admin.delete_image(result_id)

    job_deleted = _audited(admin, since, "job.deleted", f"job:{job_id}")
    assert (job_deleted.actor_id, job_deleted.subject_id) == (user_id, user_id)
    assert job_deleted.at is not None
    assert job_deleted.at >= since
    image_deleted = _audited(admin, since, "image.deleted", f"image:{image_id}")
    assert image_deleted.actor_id == user_id
    mine = admin.list_audit_events(since=since, actor_id=user_id, page_size=100)
    assert {"job.deleted", "image.deleted"} <= {e.action for e in mine}
    assert all(e.actor_id == user_id for e in mine)


async def _erase_self(target: str, key: str, user_id: str) -> tuple[str, Erasure]:
    async with AsyncGouacheGrpcClient(target, key) as user:
        content = await user.upload(small("chelsea", 32), filename="cat.png")
        return content, await user.erase_user(user_id)


def test_a_user_erases_themself_and_the_admin_sees_it_done(
    mesh: Mesh, admin: GouacheClient
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=5)
    user_id, key = _new_user(admin, mesh.config.public_url)
    content, erasure = asyncio.run(_erase_self(_edge(mesh), key, user_id))
    assert isinstance(erasure, Erasure)
    assert (erasure.user_id, erasure.status) in {(user_id, "pending"), (user_id, "done")}
    assert erasure.requested_at is not None
    deadline = time.monotonic() + 60
    while not erasure.done and time.monotonic() < deadline:
        time.sleep(0.5)
        erasure = admin.erase_user(user_id)  # asking again reports where it stands
    assert erasure.done, erasure
    assert erasure.finished_at is not None
    # Their key went with the account; their image with their data.
    with pytest.raises(UnauthenticatedError):
        GouacheClient(mesh.config.public_url, key, retry=NO_RETRIES).token()
    with pytest.raises(NotFoundError):
        admin.delete_image(_image_id(content))
    # The log names an erased user by pseudonym only, the request and the account's end alike.
    alias = pseudonym(user_id)
    assert _audited(admin, since, "account.deleted", f"user:{alias}").subject_id == alias
    # Each call asking for the erasure is recorded: the user's own, then the admin's.
    requested = list(admin.iter_audit_events(since=since, action="user.erasure_requested"))
    assert [e.subject_id for e in requested if e.target == f"user:{alias}"]
    assert not [e for e in admin.iter_audit_events(since=since) if user_id in e.raw.values()]


def test_the_cli_deletes_erases_and_reads_the_log(
    mesh: Mesh, admin: GouacheClient, capsys: pytest.CaptureFixture[str]
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=5)
    base_url = mesh.config.public_url
    user_id, key = _new_user(admin, base_url)
    with GouacheClient(base_url, key) as client:
        job_id, _, style = _stylized(client)
    mine = ["--url", base_url, "--api-key", key]
    assert mesh.credentials is not None
    admins = ["--url", base_url, "--api-key", mesh.credentials.admin_api_key]

    def run(command: str, options: list[str], *argv: str) -> tuple[int, str, str]:
        status = main([command, *options, *argv])
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    status, out, _ = run("jobs", mine, "delete", job_id)
    assert (status, json.loads(out)) == (0, {"deleted": job_id})
    status, out, err = run("jobs", mine, "delete", job_id)
    assert (status, out) == (1, "")
    assert err.startswith("error: HTTP 404")
    assert len(err.strip().splitlines()) == 1
    status, out, _ = run("images", mine, "delete", _image_id(style))
    assert (status, json.loads(out)) == (0, {"deleted": _image_id(style)})

    status, out, err = run("audit", mine)
    assert (status, out) == (1, "")
    assert err.startswith("error: HTTP 403")
    status, out, _ = run(
        "audit", admins, "--since", since.isoformat(), "--actor", user_id, "--limit", "50"
    )
    assert status == 0
    events = json.loads(out)["events"]
    assert {(e["action"], e["target"]) for e in events} >= {
        ("job.deleted", f"job:{job_id}"),
        ("image.deleted", f"image:{_image_id(style)}"),
    }
    status, out, _ = run("audit", admins, "--since", "1h", "--action", "job.deleted")
    assert f"job:{job_id}" in {e["target"] for e in json.loads(out)["events"]}

    status, out, err = run("users", admins, "erase", user_id)
    assert (status, out) == (1, "")
    assert "add --yes to confirm" in err
    status, out, _ = run("users", admins, "erase", user_id, "--yes")
    assert status == 0
    assert json.loads(out)["status"] in ("pending", "done")
