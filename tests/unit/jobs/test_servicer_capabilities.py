"""CreateJob refuses, at creation, a prompt and a style the chosen version was not trained on."""

from __future__ import annotations

import grpc

from gouache import catalogue
from gouache.contracts.common.v1 import common_pb2
from gouache.contracts.jobs.v1 import jobs_pb2
from tests.unit.jobs.conftest import Harness
from tests.unit.jobs.helpers import expect_error

INVALID = grpc.StatusCode.INVALID_ARGUMENT
FEEDFORWARD = "feedforward.lite0-v1"
TRAINED = catalogue.trained_styles(FEEDFORWARD)


async def _register_feedforward(jobs: Harness) -> None:
    await jobs.stub.RegisterModelVersion(
        jobs_pb2.RegisterModelVersionRequest(
            version=jobs_pb2.ModelVersion(
                name=FEEDFORWARD,
                family="feedforward",
                encoder="lite0",
                tile_size=512,
                config_json='{"eta_seconds": 2}',
            )
        ),
        metadata=jobs.admin(),
        timeout=10,
    )


def _request(jobs: Harness, style_sha256s: list[str], **fields: object) -> object:
    return jobs_pb2.CreateJobRequest(
        content_url=jobs.images.add("usr_alice"),
        style_urls=[jobs.images.add(None, sha256=sha256) for sha256 in style_sha256s],
        **fields,  # type: ignore[arg-type]
    )


async def test_an_untrained_style_is_refused_before_any_job_exists(jobs: Harness) -> None:
    await _register_feedforward(jobs)
    request = _request(jobs, [TRAINED[0].sha256, "ab" * 32], model_version=FEEDFORWARD)
    error = await expect_error(
        jobs.stub.CreateJob(request, metadata=jobs.auth(), timeout=10),
        INVALID,
        field="style_urls[1]",
        contains=["not a style feedforward.lite0-v1 was trained on", TRAINED[-1].title],
    )
    assert "GET /v1/styles?curated=true" in (error.details() or "")
    assert await jobs.outbox_events() == []


async def test_trained_styles_and_their_curated_copies_are_accepted(jobs: Harness) -> None:
    await _register_feedforward(jobs)
    digests = [TRAINED[0].sha256, TRAINED[1].copies[0]]
    created = await jobs.stub.CreateJob(
        _request(jobs, digests, model_version=FEEDFORWARD), metadata=jobs.auth(), timeout=10
    )
    assert created.model_version == FEEDFORWARD


async def test_a_prompt_is_refused_naming_the_field(jobs: Harness) -> None:
    request = _request(
        jobs, ["cd" * 32], params=common_pb2.StylizeParams(prompt="a stormy sea, like Turner")
    )
    await expect_error(
        jobs.stub.CreateJob(request, metadata=jobs.auth(), timeout=10),
        INVALID,
        field="params.prompt",
        contains=["cannot be honoured by gatys.lite0-v1", "Remove params.prompt"],
    )
    assert await jobs.outbox_events() == []
