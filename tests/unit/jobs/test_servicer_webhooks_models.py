"""Webhook and model-routing RPCs, and execution events applied through JobsApp."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from gouache.bus import subjects
from gouache.contracts.events.v1 import events_pb2
from gouache.contracts.jobs.v1 import jobs_pb2
from gouache.db import new_id
from gouache.runtime.context import Principal
from services.jobs.app import JobsApp, JobsConfig
from services.jobs.domain.jobs import (
    ExecutionFailed,
    ExecutionProgress,
    ExecutionSucceeded,
    InvalidEvent,
)
from services.jobs.domain.requests import JobRequest
from tests.unit.jobs.conftest import TEST_SEED_MODELS, Harness, make_app
from tests.unit.jobs.helpers import InMemoryImages, expect_error

INVALID = grpc.StatusCode.INVALID_ARGUMENT
SECRET = "0123456789abcdef"


async def _webhook(
    jobs: Harness, user: str = "usr_alice", events: tuple[str, ...] = ("job.succeeded",)
) -> jobs_pb2.Webhook:
    response = await jobs.stub.CreateWebhook(
        jobs_pb2.CreateWebhookRequest(url="https://example.com/hook", secret=SECRET, events=events),
        metadata=jobs.auth(user),
        timeout=10,
    )
    webhook: jobs_pb2.Webhook = response.webhook
    return webhook


async def test_create_list_delete_webhooks(jobs: Harness) -> None:
    created = await _webhook(jobs, events=("job.succeeded", "job.failed"))
    assert created.webhook_id.startswith("whk_")
    assert list(created.events) == ["job.succeeded", "job.failed"]
    await _webhook(jobs, "usr_bob")
    listed = await jobs.stub.ListWebhooks(
        jobs_pb2.ListWebhooksRequest(), metadata=jobs.auth(), timeout=10
    )
    assert [w.webhook_id for w in listed.webhooks] == [created.webhook_id]
    await expect_error(
        jobs.stub.DeleteWebhook(
            jobs_pb2.DeleteWebhookRequest(webhook_id=created.webhook_id),
            metadata=jobs.auth("usr_bob"),
            timeout=10,
        ),
        grpc.StatusCode.NOT_FOUND,
        field="webhook_id",
    )
    await jobs.stub.DeleteWebhook(
        jobs_pb2.DeleteWebhookRequest(webhook_id=created.webhook_id),
        metadata=jobs.auth(),
        timeout=10,
    )
    listed = await jobs.stub.ListWebhooks(
        jobs_pb2.ListWebhooksRequest(), metadata=jobs.auth(), timeout=10
    )
    assert list(listed.webhooks) == []
    await expect_error(
        jobs.stub.DeleteWebhook(
            jobs_pb2.DeleteWebhookRequest(webhook_id="whk_1"), metadata=jobs.auth(), timeout=10
        ),
        INVALID,
        field="webhook_id",
    )


@pytest.mark.parametrize(
    ("url", "secret", "events", "field"),
    [
        ("ftp://example.com", SECRET, ["job.failed"], "url"),
        ("https://", SECRET, ["job.failed"], "url"),
        ("", SECRET, ["job.failed"], "url"),
        ("https://example.com", "tooshort", ["job.failed"], "secret"),
        ("https://example.com", SECRET, [], "events"),
        ("https://example.com", SECRET, ["job.created"], "events[0]"),
    ],
)
async def test_create_webhook_bad_input(
    jobs: Harness, url: str, secret: str, events: list[str], field: str
) -> None:
    await expect_error(
        jobs.stub.CreateWebhook(
            jobs_pb2.CreateWebhookRequest(url=url, secret=secret, events=events),
            metadata=jobs.auth(),
            timeout=10,
        ),
        INVALID,
        field=field,
    )


async def test_at_most_ten_webhooks_per_user(jobs: Harness) -> None:
    for _ in range(10):
        await _webhook(jobs)
    await expect_error(
        _webhook(jobs), grpc.StatusCode.FAILED_PRECONDITION, contains=("delete one",)
    )


async def test_state_changes_queue_deliveries_for_subscribers(jobs: Harness) -> None:
    await _webhook(jobs, events=("job.running", "job.succeeded"))
    await _webhook(jobs, events=("job.failed",))
    await _webhook(jobs, "usr_bob", events=("job.running", "job.succeeded"))
    created = await jobs.create()
    await jobs.app.apply_execution(new_id("evt"), created.job_id, ExecutionProgress(0.1))
    await jobs.app.apply_execution(new_id("evt"), created.job_id, ExecutionProgress(0.6))
    await jobs.app.apply_execution(
        new_id("evt"), created.job_id, ExecutionSucceeded(result_image_id="img_r")
    )
    deliveries = await jobs.store.deliveries_for_job(created.job_id)
    assert [d.event for d in deliveries] == ["job.running", "job.succeeded"]
    assert all(d.status == "pending" and d.attempts == 0 for d in deliveries)


async def test_execution_events_apply_once(jobs: Harness) -> None:
    created = await jobs.create()
    event_id = new_id("evt")
    success = ExecutionSucceeded(result_image_id="img_r")
    assert await jobs.app.apply_execution(event_id, created.job_id, success) is True
    assert await jobs.app.apply_execution(event_id, created.job_id, success) is False
    assert await jobs.app.apply_execution(new_id("evt"), created.job_id, success) is False
    late = ExecutionFailed("INTERNAL", "late")
    assert await jobs.app.apply_execution(new_id("evt"), created.job_id, late) is False
    subjects_seen = [s for s, _ in await jobs.outbox_events()]
    assert subjects_seen == [
        subjects.job_created_subject("export", "free"),
        subjects.JOBS_SUCCEEDED,
    ]
    done = events_pb2.JobSucceeded.FromString(
        (await jobs.outbox_payloads(subjects.JOBS_SUCCEEDED))[0]
    )
    assert (done.job_id, done.result_image_id, done.model_version) == (
        created.job_id,
        "img_r",
        "gatys.lite0-v1",
    )
    assert done.latency_ms >= 0


async def test_failure_publishes_job_failed(jobs: Harness) -> None:
    created = await jobs.create()
    await jobs.app.apply_execution(
        new_id("evt"), created.job_id, ExecutionFailed("RESOURCE_EXHAUSTED", "out of memory")
    )
    failed = events_pb2.JobFailed.FromString((await jobs.outbox_payloads(subjects.JOBS_FAILED))[0])
    assert (failed.error_code, failed.error_message) == ("RESOURCE_EXHAUSTED", "out of memory")


async def test_events_that_can_never_apply(jobs: Harness) -> None:
    with pytest.raises(InvalidEvent, match="unknown job"):
        await jobs.app.apply_execution(new_id("evt"), new_id("job"), ExecutionProgress(0.1))
    created = await jobs.create()
    with pytest.raises(InvalidEvent, match="no result"):
        await jobs.app.apply_execution(new_id("evt"), created.job_id, ExecutionSucceeded(""))


async def test_list_models_shows_the_seed(jobs: Harness) -> None:
    response = await jobs.stub.ListModels(
        jobs_pb2.ListModelsRequest(), metadata=jobs.auth(), timeout=10
    )
    assert [v.name for v in response.versions] == ["gatys.lite0-fast", "gatys.lite0-v1"]
    v1 = response.versions[1]
    assert (v1.family, v1.encoder, v1.tile_size) == ("gatys", "efficientnet-lite0", 512)
    assert v1.config_json == '{"eta_seconds":60}'
    routes = {r.alias: [(t.model_version, t.weight) for t in r.targets] for r in response.routes}
    assert routes == {
        "default": [("gatys.lite0-v1", 100)],
        "gatys": [("gatys.lite0-v1", 100)],
        "gatys-fast": [("gatys.lite0-fast", 100)],
    }


def _version(**fields: object) -> jobs_pb2.ModelVersion:
    values: dict[str, object] = {
        "name": "adain.lite0-v1",
        "family": "adain",
        "encoder": "efficientnet-lite0",
        "tile_size": 768,
        "config_json": '{"eta_seconds": 3}',
    }
    values.update(fields)
    return jobs_pb2.ModelVersion(**values)  # type: ignore[arg-type]


async def test_register_version_and_route_canary(jobs: Harness) -> None:
    registered = await jobs.stub.RegisterModelVersion(
        jobs_pb2.RegisterModelVersionRequest(version=_version()),
        metadata=jobs.service(),
        timeout=10,
    )
    assert registered.version.created_at.seconds > 0
    again = await jobs.stub.RegisterModelVersion(
        jobs_pb2.RegisterModelVersionRequest(version=_version()), metadata=jobs.admin(), timeout=10
    )
    assert again.version.created_at == registered.version.created_at
    route = await jobs.stub.SetModelRoute(
        jobs_pb2.SetModelRouteRequest(
            alias="default",
            targets=[
                jobs_pb2.RouteTarget(model_version="gatys.lite0-v1", weight=0),
                jobs_pb2.RouteTarget(model_version="adain.lite0-v1", weight=100),
            ],
        ),
        metadata=jobs.admin(),
        timeout=10,
    )
    assert [t.weight for t in route.route.targets] == [0, 100]
    created = await jobs.create()
    assert (created.model_version, created.eta_seconds) == ("adain.lite0-v1", 3)
    # A restart seeds again: the changed route stays.
    await jobs.app.seed_models(TEST_SEED_MODELS)
    assert (await jobs.create()).model_version == "adain.lite0-v1"


async def test_model_administration_needs_write_models(jobs: Harness) -> None:
    user = jobs.auth()
    # A token with every user scope, and one narrowed to read:models, are both refused.
    reader = jobs.auth("usr_reader", role="operator", scopes=("read:models",))
    for metadata in (user, reader):
        await expect_error(
            jobs.stub.RegisterModelVersion(
                jobs_pb2.RegisterModelVersionRequest(version=_version()),
                metadata=metadata,
                timeout=10,
            ),
            grpc.StatusCode.PERMISSION_DENIED,
            contains=["write:models"],
        )
        await expect_error(
            jobs.stub.SetModelRoute(
                jobs_pb2.SetModelRouteRequest(alias="x"), metadata=metadata, timeout=10
            ),
            grpc.StatusCode.PERMISSION_DENIED,
        )
        await expect_error(
            jobs.stub.SetModelEndpoint(
                jobs_pb2.SetModelEndpointRequest(
                    model_version="gatys.lite0-v1", endpoint="inference-v1:50055"
                ),
                metadata=metadata,
                timeout=10,
            ),
            grpc.StatusCode.PERMISSION_DENIED,
        )


async def test_operator_registers_routes_and_lists_models(jobs: Harness) -> None:
    await jobs.stub.RegisterModelVersion(
        jobs_pb2.RegisterModelVersionRequest(version=_version()),
        metadata=jobs.operator(),
        timeout=10,
    )
    route = await jobs.stub.SetModelRoute(
        jobs_pb2.SetModelRouteRequest(
            alias="adain",
            targets=[jobs_pb2.RouteTarget(model_version="adain.lite0-v1", weight=100)],
        ),
        metadata=jobs.operator(),
        timeout=10,
    )
    assert route.route.alias == "adain"
    listed = await jobs.stub.ListModels(
        jobs_pb2.ListModelsRequest(), metadata=jobs.operator(), timeout=10
    )
    assert "adain.lite0-v1" in [v.name for v in listed.versions]
    # The operator administers models, not jobs.
    await expect_error(
        jobs.stub.CreateJob(jobs.job_request("usr_operator"), metadata=jobs.operator(), timeout=10),
        grpc.StatusCode.PERMISSION_DENIED,
    )


async def _created_event(jobs: Harness, job_id: str) -> events_pb2.JobCreated:
    for payload in await jobs.outbox_payloads(subjects.job_created_subject("export", "free")):
        event = events_pb2.JobCreated.FromString(payload)
        if event.job_id == job_id:
            return event
    raise AssertionError(f"no JobCreated for {job_id}")


async def _set_endpoint(
    jobs: Harness, version: str, endpoint: str
) -> jobs_pb2.SetModelEndpointResponse:
    response: jobs_pb2.SetModelEndpointResponse = await jobs.stub.SetModelEndpoint(
        jobs_pb2.SetModelEndpointRequest(model_version=version, endpoint=endpoint),
        metadata=jobs.operator(),
        timeout=10,
    )
    return response


async def test_job_created_event_carries_the_version_endpoint(jobs: Harness) -> None:
    before = await jobs.create(model_version="gatys-fast")
    assert (await _created_event(jobs, before.job_id)).inference_endpoint == ""

    answer = await _set_endpoint(jobs, "gatys.lite0-fast", " Inference-Fast.Gouache.svc:50055 ")
    assert (answer.model_version, answer.endpoint) == (
        "gatys.lite0-fast",
        "inference-fast.gouache.svc:50055",
    )
    # Idempotent: the same endpoint again answers the same.
    assert await _set_endpoint(jobs, "gatys.lite0-fast", "inference-fast.gouache.svc:50055") == (
        answer
    )
    by_alias = await jobs.create(model_version="gatys-fast")
    by_name = await jobs.create(model_version="gatys.lite0-fast")
    other = await jobs.create(model_version="gatys.lite0-v1")
    for job in (by_alias, by_name):
        event = await _created_event(jobs, job.job_id)
        assert (event.model_version, event.inference_endpoint) == (
            "gatys.lite0-fast",
            "inference-fast.gouache.svc:50055",
        )
    assert (await _created_event(jobs, other.job_id)).inference_endpoint == ""
    # Events already in the outbox keep the endpoint they were created with.
    assert (await _created_event(jobs, before.job_id)).inference_endpoint == ""

    # Moved, then back to the default inference.
    await _set_endpoint(jobs, "gatys.lite0-fast", "10.0.0.9:50055")
    moved = await jobs.create(model_version="gatys-fast")
    assert (await _created_event(jobs, moved.job_id)).inference_endpoint == "10.0.0.9:50055"
    cleared = await _set_endpoint(jobs, "gatys.lite0-fast", "")
    assert cleared.endpoint == ""
    back = await jobs.create(model_version="gatys-fast")
    assert (await _created_event(jobs, back.job_id)).inference_endpoint == ""


async def test_endpoints_never_reach_users(jobs: Harness) -> None:
    await _set_endpoint(jobs, "gatys.lite0-v1", "inference-secret.gouache.svc:50055")
    listed = await jobs.stub.ListModels(
        jobs_pb2.ListModelsRequest(), metadata=jobs.auth(), timeout=10
    )
    assert b"inference-secret" not in listed.SerializeToString()
    assert "endpoint" not in jobs_pb2.ModelVersion.DESCRIPTOR.fields_by_name
    created = await jobs.create()
    job = await jobs.stub.GetJob(
        jobs_pb2.GetJobRequest(job_id=created.job_id), metadata=jobs.auth(), timeout=10
    )
    assert b"inference-secret" not in job.SerializeToString()


@pytest.mark.parametrize(
    ("version", "endpoint", "code", "field", "needle"),
    [
        (
            "gatys.lite0-v9",
            "inference:50055",
            grpc.StatusCode.NOT_FOUND,
            "model_version",
            "gatys.lite0-v9",
        ),
        ("gatys", "inference:50055", grpc.StatusCode.NOT_FOUND, "model_version", "alias"),
        ("", "inference:50055", INVALID, "model_version", "model_version"),
        ("gatys.lite0-v1", "inference", INVALID, "endpoint", "host:port"),
        ("gatys.lite0-v1", "inference:70000", INVALID, "endpoint", "65535"),
        ("gatys.lite0-v1", "http://inference:50055", INVALID, "endpoint", "host:port"),
        ("gatys.lite0-v1", "a" * 250 + ":50055", INVALID, "endpoint", "253"),
    ],
)
async def test_set_endpoint_bad_input(
    jobs: Harness,
    version: str,
    endpoint: str,
    code: grpc.StatusCode,
    field: str,
    needle: str,
) -> None:
    await expect_error(
        jobs.stub.SetModelEndpoint(
            jobs_pb2.SetModelEndpointRequest(model_version=version, endpoint=endpoint),
            metadata=jobs.operator(),
            timeout=10,
        ),
        code,
        field=field,
        contains=[needle],
    )
    created = await jobs.create()
    assert (await _created_event(jobs, created.job_id)).inference_endpoint == ""


@pytest.mark.parametrize(
    ("version", "code", "field"),
    [
        (_version(name="Bad Name"), INVALID, "version.name"),
        (_version(family="pix2pix"), INVALID, "version.family"),
        (_version(tile_size=0), INVALID, "version.tile_size"),
        (_version(config_json="{not json"), INVALID, "version.config_json"),
        (_version(config_json="[1]"), INVALID, "version.config_json"),
        (_version(name="gatys"), INVALID, "version.name"),
        (
            _version(name="gatys.lite0-v1", tile_size=1024),
            grpc.StatusCode.ALREADY_EXISTS,
            "version.name",
        ),
    ],
)
async def test_register_version_bad_input(
    jobs: Harness, version: jobs_pb2.ModelVersion, code: grpc.StatusCode, field: str
) -> None:
    await expect_error(
        jobs.stub.RegisterModelVersion(
            jobs_pb2.RegisterModelVersionRequest(version=version),
            metadata=jobs.admin(),
            timeout=10,
        ),
        code,
        field=field,
    )


@pytest.mark.parametrize(
    ("alias", "targets", "field"),
    [
        ("default", [("gatys.lite0-v1", 101)], "targets[0].weight"),
        ("default", [("gatys.lite0-v1", 0)], "targets"),
        ("default", [], "targets"),
        ("default", [("adain-9", 10)], "targets[0].model_version"),
        ("", [("gatys.lite0-v1", 10)], "alias"),
    ],
)
async def test_set_route_bad_input(
    jobs: Harness, alias: str, targets: list[tuple[str, int]], field: str
) -> None:
    await expect_error(
        jobs.stub.SetModelRoute(
            jobs_pb2.SetModelRouteRequest(
                alias=alias,
                targets=[jobs_pb2.RouteTarget(model_version=v, weight=w) for v, w in targets],
            ),
            metadata=jobs.admin(),
            timeout=10,
        ),
        INVALID,
        field=field,
    )
    assert (await jobs.create()).model_version == "gatys.lite0-v1"


async def test_idempotency_key_expires(tmp_path: Path) -> None:
    images = InMemoryImages()
    clock = [datetime(2025, 1, 1, tzinfo=UTC)]
    seeded = await make_app(f"sqlite+aiosqlite:///{tmp_path / 'ttl.db'}", images)
    app = JobsApp(
        seeded.store, images, images, config=JobsConfig(idempotency_ttl_s=60), now=lambda: clock[0]
    )
    principal = Principal(user_id="usr_alice", role="user")
    request = JobRequest(
        content_url=images.add("usr_alice"),
        style_urls=(images.add(None),),
        idempotency_key="daily",
    )
    first, created = await app.create_job(principal, request)
    assert created
    clock[0] += timedelta(seconds=59)
    assert (await app.create_job(principal, request)) == (first, False)
    clock[0] += timedelta(seconds=2)
    second, created = await app.create_job(principal, request)
    assert created
    assert second.job_id != first.job_id
    old = await app.store.get_job(first.job_id)
    assert old is not None
    assert old.idempotency_key is None
    await seeded.store.close()
