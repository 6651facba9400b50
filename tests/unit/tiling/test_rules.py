"""Tiling rules without I/O: tile plans, error classes, canceled ids, event conversion."""

from __future__ import annotations

import re

import pytest

from gouache.contracts.common.v1 import common_pb2
from gouache.contracts.events.v1 import events_pb2
from gouache.imaging.errors import ImageRejected
from gouache.runtime.errors import (
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)
from services.tiling.bus import job_from_event
from services.tiling.clients import stylize_params
from services.tiling.domain import CanceledJobs, classify, plan_image, result_image_id


def test_overlap_of_exactly_half_the_tile_is_accepted_and_narrowed() -> None:
    plan = plan_image(300, 100, 128, 64)
    assert plan.overlap == 63
    assert plan.tile_size == 128
    assert len(plan.tiles) == 4  # stride 65 over 300 px


def test_plan_covers_the_image() -> None:
    plan = plan_image(1000, 700, 256, 32)
    assert max(t.x + t.width for t in plan.tiles) == 1000
    assert max(t.y + t.height for t in plan.tiles) == 700
    assert all(t.width == 256 and t.height == 256 for t in plan.tiles)


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ((100, 100, 63, 0), "params.tile_size"),
        ((100, 100, 2049, 0), "params.tile_size"),
        ((100, 100, 128, 65), "params.overlap"),
        ((100, 100, 128, -1), "params.overlap"),
        ((0, 100, 128, 0), "width"),
    ],
)
def test_bad_plans_name_the_field(args: tuple[int, int, int, int], field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        plan_image(*args)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("error", "code", "permanent"),
    [
        (InvalidArgument("x"), "INVALID_ARGUMENT", True),
        (NotFound("x"), "NOT_FOUND", True),
        (PermissionDenied("x"), "PERMISSION_DENIED", True),
        (ImageRejected("undecodable", "x"), "INVALID_ARGUMENT", True),
        (Unavailable("x"), "UNAVAILABLE", False),
        (Unauthenticated("x"), "UNAUTHENTICATED", False),
        (TimeoutError(), "DEADLINE_EXCEEDED", False),
        (OSError("connection refused"), "UNAVAILABLE", False),
        (KeyError("bug"), "INTERNAL", False),
    ],
)
def test_classify(error: BaseException, code: str, permanent: bool) -> None:
    failure = classify(error)
    assert (failure.code, failure.permanent) == (code, permanent)
    assert failure.message


def test_canceled_jobs_forget_the_oldest_beyond_capacity() -> None:
    canceled = CanceledJobs(2)
    for job_id in ("job_a", "job_b", "job_c"):
        canceled.add(job_id)
    assert "job_a" not in canceled
    assert "job_b" in canceled
    assert "job_c" in canceled
    assert len(canceled) == 2


def test_result_id_is_derived_from_the_job_id() -> None:
    assert result_image_id("job_01JTESTTESTTESTTESTTESTTES") == "img_01JTESTTESTTESTTESTTESTTES"
    hashed = result_image_id("job-from-elsewhere")
    assert hashed == result_image_id("job-from-elsewhere")
    assert hashed != result_image_id("job-from-elsewhere-2")
    assert re.fullmatch(r"img_[0-9A-HJKMNP-TV-Z]{26}", hashed)


def test_job_from_event_keeps_unset_fields_unset_and_params_round_trip() -> None:
    params = common_pb2.StylizeParams(
        alpha=0.7, seed=42, weights=[0.6, 0.4], luminance_only=True, tile_size=0
    )
    event = events_pb2.JobCreated(
        event_id="evt_1",
        job_id="job_1",
        owner_id="usr_1",
        content_image_id="img_c",
        style_image_ids=["img_s1", "img_s2"],
        model_version="gatys.lite0-fast",
        params=params,
    )
    job = job_from_event(event)
    assert job.style_image_ids == ("img_s1", "img_s2")
    assert job.params.alpha == pytest.approx(0.7)
    assert job.params.seed == 42
    assert job.params.tile_size is None  # 0 means the model's default
    assert job.params.overlap is None
    assert job.params.tv_weight is None

    sent = stylize_params(job.params)
    assert sent.HasField("alpha")
    assert sent.HasField("seed")
    assert not sent.HasField("tv_weight")
    assert list(sent.weights) == pytest.approx([0.6, 0.4])
    assert sent.luminance_only
