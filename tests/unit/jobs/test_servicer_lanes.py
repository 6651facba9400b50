"""Routing by intent and priority at CreateJob: previews, max_side, and the subject per class."""

from __future__ import annotations

import grpc
import pytest

from gouache.bus import subjects
from gouache.contracts.common.v1 import common_pb2
from gouache.contracts.events.v1 import events_pb2
from gouache.contracts.jobs.v1 import jobs_pb2
from tests.unit.jobs.conftest import Harness
from tests.unit.jobs.helpers import expect_error

INVALID = grpc.StatusCode.INVALID_ARGUMENT


async def _route_default_to_adain(jobs: Harness) -> None:
    await jobs.stub.RegisterModelVersion(
        jobs_pb2.RegisterModelVersionRequest(
            version=jobs_pb2.ModelVersion(
                name="adain.lite0-v1.1",
                family="adain",
                encoder="efficientnet-lite0",
                tile_size=2048,
                config_json='{"eta_seconds": 2}',
            )
        ),
        metadata=jobs.admin(),
        timeout=10,
    )
    await jobs.stub.SetModelRoute(
        jobs_pb2.SetModelRouteRequest(
            alias="default",
            targets=[jobs_pb2.RouteTarget(model_version="adain.lite0-v1.1", weight=100)],
        ),
        metadata=jobs.admin(),
        timeout=10,
    )


async def _created_event(jobs: Harness, subject: str) -> events_pb2.JobCreated:
    (payload,) = await jobs.outbox_payloads(subject)
    return events_pb2.JobCreated.FromString(payload)


async def _job(jobs: Harness, job_id: str, user: str = "usr_alice") -> jobs_pb2.Job:
    job: jobs_pb2.Job = await jobs.stub.GetJob(
        jobs_pb2.GetJobRequest(job_id=job_id), metadata=jobs.auth(user), timeout=10
    )
    return job


async def test_a_preview_is_small_one_pass_and_published_as_a_preview(jobs: Harness) -> None:
    await _route_default_to_adain(jobs)
    request = jobs.job_request(model_version="gatys", lane="preview")
    created = await jobs.stub.CreateJob(
        request, metadata=jobs.auth(extra={"plan": "pro"}), timeout=10
    )
    # gatys optimises for tens of seconds: the preview runs the default one-pass model.
    assert created.model_version == "adain.lite0-v1.1"
    job = await _job(jobs, created.job_id)
    assert job.lane == "preview"
    assert job.requested_model_version == "gatys"
    assert job.params.max_side == 512
    event = await _created_event(jobs, subjects.job_created_subject("preview", "pro"))
    assert (event.lane, event.tier) == ("preview", "pro")
    assert event.params.max_side == 512


@pytest.mark.parametrize(("asked", "kept"), [(256, 256), (2000, 512)])
async def test_a_preview_keeps_a_smaller_max_side_and_caps_a_larger_one(
    jobs: Harness, asked: int, kept: int
) -> None:
    created = await jobs.create(
        model_version="gatys-fast",
        lane="preview",
        params=common_pb2.StylizeParams(max_side=asked),
    )
    assert (await _job(jobs, created.job_id)).params.max_side == kept


@pytest.mark.parametrize(
    ("plan", "tier"), [("enterprise", "enterprise"), ("free", "free"), ("gold", "free")]
)
async def test_an_export_keeps_its_model_and_size_and_goes_out_by_tier(
    jobs: Harness, plan: str, tier: str
) -> None:
    request = jobs.job_request(model_version="gatys-fast")
    created = await jobs.stub.CreateJob(
        request, metadata=jobs.auth(extra={"plan": plan}), timeout=10
    )
    assert created.model_version == "gatys.lite0-fast"
    job = await _job(jobs, created.job_id)
    assert job.lane == "export"
    assert not job.params.HasField("max_side")
    assert [subject for subject, _ in await jobs.outbox_events()] == [
        subjects.job_created_subject("export", tier)
    ]


async def test_the_same_key_for_a_preview_and_an_export_is_a_conflict(jobs: Harness) -> None:
    request = jobs.job_request(model_version="gatys-fast", idempotency_key="k1")
    await jobs.stub.CreateJob(request, metadata=jobs.auth(), timeout=10)
    request.lane = "preview"
    await expect_error(
        jobs.stub.CreateJob(request, metadata=jobs.auth(), timeout=10),
        grpc.StatusCode.ALREADY_EXISTS,
        field="idempotency_key",
    )


async def test_bad_lane_and_max_side_are_refused_with_the_field(jobs: Harness) -> None:
    await expect_error(
        jobs.create(lane="draft"), INVALID, field="lane", contains=["preview, export"]
    )
    for side in (8, 9000):
        await expect_error(
            jobs.create(params=common_pb2.StylizeParams(max_side=side)),
            INVALID,
            field="params.max_side",
            contains=["between 16 and 8192"],
        )
