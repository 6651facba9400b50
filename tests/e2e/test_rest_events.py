"""Live progress over REST: GET /v1/jobs/{job_id}:events through the edge of a real mesh, as
`curl -N` or the studio's fetch() reads it: server-sent events from WatchJob until the job is
final, then the end of the stream; errors as JSON with the status GetJob would answer."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

from gouache.cli.mesh import Mesh
from gouache.client import GouacheClient
from gouache.client.events import JOB_EVENTS_PATH, iter_job_updates
from tests.e2e.images import small
from tests.e2e.users import new_user

pytestmark = pytest.mark.slow

# A gatys-fast job of nine 128 px tiles in three inference calls: a few seconds on a CPU,
# long enough to report progress (at most every 0.5 s) between pending and its outcome.
SIDE = 320
PARAMS = {"tile_size": 128, "overlap": 16, "seed": 3}
# Generous bounds for a loaded 2-core machine; the job itself takes a few seconds.
JOB_TIMEOUT_S = 240.0
READ_TIMEOUT_S = 120.0


def _unknown_job_id() -> str:
    """A well-formed job id (ULID digits) that no job has."""
    return "job_" + uuid.uuid4().hex[:26].upper()


def _events_url(mesh: Mesh, job_id: str) -> str:
    return mesh.config.public_url + JOB_EVENTS_PATH.format(job_id=job_id)


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def _start_job(user: GouacheClient) -> str:
    content = user.upload(small("chelsea", SIDE), filename="cat.png")
    style = user.upload(small("hubble_deep_field", 64), filename="stars.png", kind="style")
    job = user.create_job(
        content, [style], model_version="gatys-fast", params=PARAMS, no_cache=True
    )
    return str(job["job_id"])


def _read_stream(mesh: Mesh, job_id: str, token: str) -> tuple[list[dict[str, Any]], float]:
    """Every job state the stream sends, and when (seconds after opening) it ended."""
    timeout = httpx.Timeout(10.0, read=READ_TIMEOUT_S)
    opened = time.monotonic()
    with httpx.stream(
        "GET", _events_url(mesh, job_id), headers=_bearer(token), timeout=timeout
    ) as response:
        assert response.status_code == 200, response.read().decode()
        assert response.headers["content-type"] == "text/event-stream"
        assert response.headers["cache-control"] == "no-cache"
        jobs = list(iter_job_updates(response))
    return jobs, time.monotonic() - opened


def test_a_running_job_streams_its_progress_to_the_end(mesh: Mesh, admin: GouacheClient) -> None:
    with new_user(admin, mesh.config.public_url) as user:
        job_id = _start_job(user)
        jobs, _ = _read_stream(mesh, job_id, user.token())
        final = user.get_job(job_id)

    statuses = [job["status"] for job in jobs]
    progress = [job["progress"] for job in jobs]
    assert statuses[-1] == "succeeded", jobs
    assert set(statuses[:-1]) <= {"pending", "running"}, statuses
    assert any(s == "running" and 0 < p < 1 for s, p in zip(statuses, progress, strict=True)), jobs
    assert progress == sorted(progress), progress
    assert len(jobs) == len({(j["status"], j["progress"], j["updated_at"]) for j in jobs})
    # The last event is the job as GetJob answers it once final, result URL included.
    assert jobs[-1]["job_id"] == job_id
    assert jobs[-1]["result_url"]
    assert final["status"] == "succeeded"
    assert jobs[-1]["latency_ms"] == final["latency_ms"]


def test_a_final_job_sends_one_event_and_closes(mesh: Mesh, admin: GouacheClient) -> None:
    with new_user(admin, mesh.config.public_url) as user:
        job_id = _start_job(user)
        assert user.wait(job_id, timeout_s=JOB_TIMEOUT_S).status == "succeeded"
        jobs, took_s = _read_stream(mesh, job_id, user.token())

    assert [job["status"] for job in jobs] == ["succeeded"]
    assert took_s < 5.0, "the stream of a final job must end at once"


def test_another_users_job_is_not_found_as_with_get_job(mesh: Mesh, admin: GouacheClient) -> None:
    with (
        new_user(admin, mesh.config.public_url) as owner,
        new_user(admin, mesh.config.public_url) as other,
    ):
        job_id = _start_job(owner)
        streamed = httpx.get(_events_url(mesh, job_id), headers=_bearer(other.token()))
        fetched = httpx.get(
            f"{mesh.config.public_url}/v1/jobs/{job_id}", headers=_bearer(other.token())
        )
        owner.cancel_job(job_id)

    assert streamed.status_code == fetched.status_code == 404
    assert streamed.headers["content-type"] == "application/json"
    assert streamed.json() == fetched.json()
    assert job_id in streamed.json()["message"]


@pytest.mark.parametrize(
    ("headers", "needle"),
    [
        ({}, "authorization"),
        (_bearer("not-a-jwt"), "token"),
        (
            _bearer(
                "eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIiwidHlwIjoiSldUIn0"
                ".eyJzdWIiOiJ1XzEiLCJleHAiOjE3MDAwMDAwMDB9.c2lnbmF0dXJl"
            ),
            "token",
        ),
    ],
    ids=["no-token", "garbage", "forged-expired"],
)
def test_a_missing_or_bad_token_is_401(
    mesh: Mesh, admin: GouacheClient, headers: dict[str, str], needle: str
) -> None:
    job_id = _unknown_job_id()

    response = httpx.get(_events_url(mesh, job_id), headers=headers)

    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json()["code"] == 16
    assert needle in response.json()["message"].lower()


def test_an_unknown_job_is_404_and_a_malformed_id_400(mesh: Mesh, admin: GouacheClient) -> None:
    token = admin.token()
    unknown = _unknown_job_id()

    missing = httpx.get(_events_url(mesh, unknown), headers=_bearer(token))
    malformed = httpx.get(_events_url(mesh, "x" * 300), headers=_bearer(token))

    assert missing.status_code == 404, missing.text
    assert unknown in missing.json()["message"]
    assert malformed.status_code == 400, malformed.text
    assert "job_id" in malformed.json()["message"]
