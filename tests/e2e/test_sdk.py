"""The Python SDK against the embedded mesh: the four clients (REST and gRPC, sync and
async) through the edge, with the same calls, results and errors."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import pytest

from gouache import catalogue
from gouache.cli.mesh import Mesh
from gouache.client import (
    AsyncGouacheClient,
    AsyncGouacheGrpcClient,
    GouacheClient,
    GouacheGrpcClient,
    InvalidArgumentError,
    Job,
    NotFoundError,
    PermissionDeniedError,
)
from gouache.client.sync_api import SyncApi
from tests.e2e.images import small

pytestmark = pytest.mark.slow

T = TypeVar("T")
PNG = b"\x89PNG"
# What model_version "adain", the name the flows below ask for, runs.
ADAIN_ALIAS_VERSION = catalogue.aliases()["adain"][0].model_version
# A well-formed id that names no job.
MISSING_JOB = "job_" + "0" * 26


def _edge(mesh: Mesh) -> str:
    return f"127.0.0.1:{mesh.config.ports.envoy}"


def _new_user(admin: GouacheClient, base_url: str) -> tuple[str, str]:
    """(user id, API key) of a fresh non-admin user, made through the REST API."""
    email = f"sdk-{uuid.uuid4().hex[:8]}@example.com"
    headers = {"authorization": f"Bearer {admin.token()}"}
    with httpx.Client(base_url=base_url, headers=headers) as http:
        created = http.post("/v1/users", json={"email": email, "password": "correct horse battery"})
        assert created.status_code == 200, created.text
        user_id = str(created.json()["user_id"])
        key = http.post("/v1/api-keys", json={"name": "sdk", "user_id": user_id})
        assert key.status_code == 200, key.text
    return user_id, str(key.json()["api_key"])


def _eventually(call: Callable[[], T], *, timeout_s: float = 30.0) -> T:
    """call() once feedback has learnt of the job's outcome (an event after the job ends)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return call()
        except NotFoundError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def _stylize(client: SyncApi, content: bytes, styles: list[bytes]) -> tuple[Job, list[Job]]:
    """Uploads, creates an adain job mixing the styles, waits with a progress callback."""
    content_url = client.upload(content, filename="content.png")
    style_urls = [
        client.upload(style, filename=f"style{i}.png", kind="style")
        for i, style in enumerate(styles)
    ]
    created = client.create_job(
        content_url,
        dict(zip(style_urls, [0.7, 0.3], strict=True)),
        model_version="adain",
        alpha=0.8,
        preserve_color=True,
        max_side=48,
        no_cache=True,
    )
    assert created.status in ("pending", "running", "succeeded")
    seen: list[Job] = []
    result = client.wait(created.job_id, timeout_s=120, progress=seen.append)
    return result, seen


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_the_sync_clients_run_the_whole_flow(
    mesh: Mesh, admin: GouacheClient, transport: str
) -> None:
    user_id, key = _new_user(admin, mesh.config.public_url)
    client: SyncApi = (
        GouacheClient(mesh.config.public_url, key)
        if transport == "rest"
        else GouacheGrpcClient(_edge(mesh), key)
    )
    with client:
        result, seen = _stylize(client, small("astronaut", 64), [small("rocket"), small("coffee")])
        assert result.status == "succeeded", result.error
        assert seen[-1] == result
        assert all(isinstance(job, Job) for job in seen)
        assert result.model_version == ADAIN_ALIAS_VERSION
        assert result.params["weights"] == pytest.approx([0.7, 0.3])
        assert result.params["alpha"] == pytest.approx(0.8)
        assert result.params["luminance_only"] is True
        assert client.download_result(result).startswith(PNG)
        assert client.get_job(result.job_id).result_image_id == result.result_image_id
        assert [job.job_id for job in client.list_jobs(page_size=5)] == [result.job_id]
        assert [job.job_id for job in client.iter_jobs(status="succeeded")] == [result.job_id]
        # Without a callback, wait long-polls and returns the same final job.
        assert client.wait(result.job_id, timeout_s=30).status == "succeeded"

        rated = _eventually(lambda: client.submit_feedback(result.job_id, 4, "nice"))
        assert (rated.job_id, rated.rating) == (result.job_id, 4)

        hook = client.create_webhook(
            "http://127.0.0.1:9/hook", "s" * 16, ["job.succeeded", "batch.finished"]
        )
        assert hook.events == ("job.succeeded", "batch.finished")
        assert [w.webhook_id for w in client.list_webhooks()] == [hook.webhook_id]
        client.delete_webhook(hook.webhook_id)
        assert client.list_webhooks() == []

        curated = client.list_styles(curated=True)
        assert curated
        assert all(style.curated for style in curated)
        # The shipped paintings carry their record (the mesh's own test styles do not).
        assert any(style.title and style.artist and style.license for style in curated)
        models = client.list_models()
        assert "default" in {route.alias for route in models.routes}
        assert any(version.family == "adain" for version in models.versions)

        content = client.upload(small("chelsea", 48), filename="cat.png")
        batch = client.create_batch(
            [content, content], [curated[0].style_id], model_version="adain"
        )
        assert batch.total == 2
        done = client.wait_batch(batch.batch_id, timeout_s=120, poll_s=0.3)
        assert done.status == "succeeded"
        assert done.counts.succeeded == 2
        assert [item.index for item in client.batch_items(batch.batch_id)] == [0, 1]
        assert batch.batch_id in {b.batch_id for b in client.list_batches()}
        assert client.cancel_batch(batch.batch_id).status == "succeeded"

        with pytest.raises(NotFoundError) as missing:
            client.get_job(MISSING_JOB)
        assert (missing.value.status, missing.value.code) == (404, 5)
        with pytest.raises(InvalidArgumentError) as refused:
            client.create_job(content, [curated[0].style_id], alpha=2.0)
        assert refused.value.status == 400
        assert "alpha" in refused.value.message

        usage = _eventually(lambda: _usage_with_batch(client))
        assert {record.user_id for record in usage} == {user_id}
        assert sum(record.jobs_succeeded for record in usage) == 3
        with pytest.raises(PermissionDeniedError, match="only admins"):
            client.get_usage(user_id="usr_someone_else")


def _usage_with_batch(client: SyncApi) -> list[Any]:
    """The user's usage once feedback has recorded all three of their jobs."""
    usage = client.get_usage(since=datetime.now(UTC) - timedelta(hours=1))
    if sum(record.jobs_succeeded for record in usage) < 3:
        raise NotFoundError(404, "not all outcomes recorded yet", 5)
    return usage


def test_rest_and_grpc_answer_the_same(mesh: Mesh, admin: GouacheClient) -> None:
    _, key = _new_user(admin, mesh.config.public_url)
    with (
        GouacheClient(mesh.config.public_url, key) as rest,
        GouacheGrpcClient(_edge(mesh), key) as grpc_client,
    ):
        content = rest.upload(small("astronaut", 48), filename="a.png")
        style = grpc_client.upload(small("rocket", 48), filename="r.png", kind="style")
        job = grpc_client.create_job(content, [style], model_version="adain", no_cache=True)
        over_rest = rest.wait(job.job_id, timeout_s=120)
        over_grpc = grpc_client.get_job(job.job_id)
        assert set(over_rest) == set(over_grpc)
        for name in ("job_id", "status", "model_version", "result_image_id", "params", "lane"):
            assert over_rest[name] == over_grpc[name], name
        assert over_rest.created_at == over_grpc.created_at


def test_admins_read_everyones_usage_over_rest(mesh: Mesh, admin: GouacheClient) -> None:
    user_id, key = _new_user(admin, mesh.config.public_url)
    with GouacheClient(mesh.config.public_url, key) as user:
        content = user.upload(small("astronaut", 32), filename="a.png")
        style = user.upload(small("coffee", 32), filename="c.png", kind="style")
        job = user.create_job(content, [style], model_version="adain")
        assert user.wait(job.job_id, timeout_s=120).status == "succeeded"

    def recorded() -> list[Any]:
        records = admin.get_usage(user_id=user_id)
        if not records:
            raise NotFoundError(404, "not recorded yet", 5)
        return records

    (record,) = _eventually(recorded)
    assert (record.user_id, record.jobs_succeeded, record.jobs_failed) == (user_id, 1, 0)
    # The 32 px content.
    assert record.output_megapixels == pytest.approx(32 * 32 / 1e6)
    assert record.model_version == ADAIN_ALIAS_VERSION
    everyone = admin.get_usage(since=datetime.now(UTC) - timedelta(hours=1))
    assert user_id in {r.user_id for r in everyone}
    yesterday = admin.get_usage(until=datetime.now(UTC) - timedelta(days=1))
    assert user_id not in {r.user_id for r in yesterday}
    # The REST shape the studio reads.
    headers = {"authorization": f"Bearer {admin.token()}"}
    answer = httpx.get(
        f"{mesh.config.public_url}/v1/usage",
        params={"user_id": user_id, "since": "2020-01-01T00:00:00Z"},
        headers=headers,
    )
    assert answer.status_code == 400, answer.text  # more than 400 days ago
    assert "400 days" in answer.json()["message"]
    answer = httpx.get(
        f"{mesh.config.public_url}/v1/usage", params={"user_id": user_id}, headers=headers
    )
    assert answer.status_code == 200, answer.text
    (row,) = answer.json()["usage"]
    assert row["user_id"] == user_id
    assert row["jobs_succeeded"] == "1"  # int64 is a string in JSON
    assert set(row) == {
        "user_id",
        "model_version",
        "jobs_succeeded",
        "jobs_failed",
        "jobs_cached",
        "last_finished_at",
        "output_megapixels",
        "compute_seconds",
        "gpu_seconds",
        "period",
        "project_id",
    }
    assert row["output_megapixels"] == pytest.approx(0.001024)


@pytest.mark.parametrize("transport", ["rest", "grpc"])
async def test_the_async_clients_run_the_flow(
    mesh: Mesh, admin: GouacheClient, transport: str
) -> None:
    _, key = _new_user(admin, mesh.config.public_url)
    client = (
        AsyncGouacheClient(mesh.config.public_url, key)
        if transport == "rest"
        else AsyncGouacheGrpcClient(_edge(mesh), key)
    )
    seen: list[Job] = []

    async def progress(job: Job) -> None:
        seen.append(job)

    async with client:
        content = await client.upload(small("astronaut", 48), filename="a.png")
        style = await client.upload(small("coffee", 48), filename="c.png", kind="style")
        created = await client.create_job(
            content, [style], model_version="adain", lane="preview", no_cache=True
        )
        result = await client.wait(created.job_id, timeout_s=120, progress=progress)
        assert result.status == "succeeded", result.error
        assert seen[-1] == result
        assert result.lane == "preview"
        assert (await client.download_result(result)).startswith(PNG)
        assert [job.job_id async for job in client.iter_jobs()] == [created.job_id]
        hook = await client.create_webhook("http://127.0.0.1:9/hook", "s" * 16)
        assert [w.webhook_id for w in await client.list_webhooks()] == [hook.webhook_id]
        await client.delete_webhook(hook.webhook_id)
        with pytest.raises(NotFoundError):
            await client.cancel_job(MISSING_JOB)
        with pytest.raises(PermissionDeniedError):
            await client.get_usage(user_id="usr_someone_else")
        assert (await client.list_models()).routes


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_progress_reports_each_change_of_a_running_job(
    mesh: Mesh, admin: GouacheClient, transport: str
) -> None:
    """gatys-fast optimises a 256 px image for seconds, reporting progress every 0.5 s (a
    job done sooner reports none): the callback sees it running, its progress never going
    back, then the final state (REST: the event stream; gRPC: WatchJob)."""
    _, key = _new_user(admin, mesh.config.public_url)
    client: SyncApi = (
        GouacheClient(mesh.config.public_url, key)
        if transport == "rest"
        else GouacheGrpcClient(_edge(mesh), key)
    )
    with client:
        content = client.upload(small("astronaut", 256), filename="a.png")
        style = client.upload(small("rocket", 128), filename="r.png", kind="style")
        created = client.create_job(content, [style], model_version="gatys-fast", no_cache=True)
        seen: list[Job] = []
        result = client.wait(created.job_id, timeout_s=120, progress=seen.append)
    assert result.status == "succeeded", result.error
    assert any(job.status == "running" and 0 < job.progress < 1 for job in seen), seen
    fractions = [job.progress for job in seen]
    assert fractions == sorted(fractions)
    assert seen[-1].progress == 1.0
