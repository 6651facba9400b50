"""JobRunner with in-memory storage, inference and events: tiling, cancel, failures, retries."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

import numpy as np
import pytest

from gouache.imaging import codec
from gouache.runtime.errors import (
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unavailable,
)
from services.tiling.domain import (
    CanceledJobs,
    Job,
    JobParams,
    JobRunner,
    Outcome,
    RetryLater,
    result_image_id,
)
from tests.unit.tiling.fakes import FakeEvents, FakeInference, FakeStorage

JOB_ID = "job_01JTESTTESTTESTTESTTESTTES"
MAX_DELIVER = 3


def _image(width: int, height: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


class Harness:
    def __init__(
        self,
        content: np.ndarray,
        *,
        tile_size: int = 256,
        batch_size: int = 4,
        max_batch_bytes: int = 48 * 1024 * 1024,
        trained_styles_only: bool = False,
        progress_interval_s: float = 0.0,
        result_url_ttl_s: int = 0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.storage = FakeStorage()
        self.inference = FakeInference()
        self.events = FakeEvents()
        self.canceled = CanceledJobs(100)
        self.content = content
        self.storage.put("img_content", content)
        self.storage.put("img_style", _image(300, 200, seed=7), fmt="jpeg")
        self.runner = JobRunner(
            self.storage,
            self.inference,
            self.events,
            canceled=self.canceled,
            tile_size_for=_constant(tile_size),
            trained_styles_only=_answer(trained_styles_only),
            default_overlap=32,
            batch_size=batch_size,
            max_batch_bytes=max_batch_bytes,
            max_deliver=MAX_DELIVER,
            progress_interval_s=progress_interval_s,
            result_url_ttl_s=result_url_ttl_s,
            monotonic=monotonic,
        )

    def job(self, **params: object) -> Job:
        return Job(
            job_id=JOB_ID,
            owner_id="usr_owner",
            content_image_id="img_content",
            style_image_ids=("img_style",),
            model_version="gatys.lite0-fast",
            params=JobParams(**params),  # type: ignore[arg-type]
        )

    def result_pixels(self) -> np.ndarray:
        return codec.validate_and_decode(self.storage.uploads[-1]["data"]).pixels


async def test_small_image_is_one_tile_and_the_result_is_stored_for_the_owner() -> None:
    harness = Harness(_image(100, 80))
    outcome = await harness.runner.run(harness.job(seed=3, alpha=0.5))

    assert outcome is Outcome.SUCCEEDED
    assert len(harness.inference.calls) == 1
    call = harness.inference.calls[0]
    assert call.tile_shapes == [(80, 100, 3)]
    assert call.model_version == "gatys.lite0-fast"
    assert call.params.seed == 3
    assert call.params.alpha == 0.5
    # The style is shrunk to the tile size and keyed by its bytes and that size.
    assert call.style_shapes == [(171, 256, 3)]
    assert call.style_keys[0].endswith("@256")

    upload = harness.storage.uploads[0]
    assert upload["image_id"] == result_image_id(JOB_ID) == "img_01JTESTTESTTESTTESTTESTTES"
    assert upload["owner_id"] == "usr_owner"
    assert upload["content_type"] == "image/png"
    metadata = json.loads(upload["metadata_json"])
    assert metadata["model_version"] == "gatys.lite0-fast"
    assert metadata["tiles"] == 1
    assert metadata["params"]["seed"] == 3
    assert set(metadata["timings_ms"]) >= {"load_ms", "stylize_ms", "encode_ms"}
    np.testing.assert_array_equal(harness.result_pixels(), 255 - harness.content)

    kinds = [kind for kind, _ in harness.events.published]
    assert kinds[0] == "progress"
    assert harness.events.of_kind("progress")[0]["stage"] == "loading"
    assert kinds[-1] == "succeeded"
    succeeded = harness.events.of_kind("succeeded")[0]
    assert succeeded["event_id"] == f"exec-succeeded-{JOB_ID}"
    assert succeeded["result_image_id"] == upload["image_id"]
    assert succeeded["tiles"] == 1
    assert (succeeded["output_width"], succeeded["output_height"]) == (100, 80)
    assert harness.runner.status.jobs_succeeded == 1
    assert harness.runner.status.running_job_ids == []


async def test_large_image_is_tiled_batched_and_blended_back() -> None:
    harness = Harness(_image(300, 200), tile_size=128, batch_size=4)
    outcome = await harness.runner.run(harness.job(overlap=16, output_format="png"))

    assert outcome is Outcome.SUCCEEDED
    # 300 wide -> 3 columns, 200 high -> 2 rows of 128 px tiles: 6 tiles in 2 batches.
    assert [len(call.tile_shapes) for call in harness.inference.calls] == [4, 2]
    assert all(shape == (128, 128, 3) for c in harness.inference.calls for shape in c.tile_shapes)
    # Inverting is per pixel, so a seamless blend of inverted tiles is the inverted image.
    np.testing.assert_array_equal(harness.result_pixels(), 255 - harness.content)
    assert harness.events.of_kind("succeeded")[0]["tiles"] == 6

    stylizing = [
        e["fraction"] for e in harness.events.of_kind("progress") if e["stage"] == "stylizing"
    ]
    assert len(stylizing) == 2
    assert stylizing == sorted(stylizing)
    assert 0.0 < stylizing[0] < stylizing[1] <= 0.9
    stages = [e["stage"] for e in harness.events.of_kind("progress")]
    assert stages == ["loading", "stylizing", "stylizing", "encoding", "storing"]
    assert len({e["event_id"] for e in harness.events.of_kind("progress")}) == len(stages)


async def test_progress_is_sent_once_the_interval_has_passed_and_at_most_once_per_interval() -> (
    None
):
    # A job done within the interval reports no progress; its outcome event says it all.
    # Each progress event costs a publish and a transaction in jobs.
    quick = Harness(_image(300, 200), tile_size=128, batch_size=4, progress_interval_s=60.0)
    assert await quick.runner.run(quick.job()) is Outcome.SUCCEEDED
    assert quick.events.of_kind("progress") == []
    assert len(quick.events.of_kind("succeeded")) == 1

    # A slow one reports whenever the interval has passed: here the job starts at 0 and
    # every report comes 0.4 s after the previous one; with a 0.5 s interval the reports
    # at 0.8 s and 1.6 s are sent.
    ticks = iter(range(0, 10_000, 4))
    slow = Harness(
        _image(300, 200),
        tile_size=128,
        batch_size=4,
        progress_interval_s=0.5,
        monotonic=lambda: next(ticks) / 10,
    )
    assert await slow.runner.run(slow.job()) is Outcome.SUCCEEDED
    assert [e["stage"] for e in slow.events.of_kind("progress")] == ["stylizing", "encoding"]


async def test_a_style_is_downloaded_once_per_tile_size_and_reused_by_later_jobs() -> None:
    harness = Harness(_image(100, 80), tile_size=256)
    for job_id in ("job_01JTESTTESTTESTTESTTESTTE1", "job_01JTESTTESTTESTTESTTESTTE2"):
        job = replace(harness.job(), job_id=job_id)
        assert await harness.runner.run(job) is Outcome.SUCCEEDED
    assert harness.storage.downloads.count("img_style") == 1
    assert harness.storage.downloads.count("img_content") == 2
    first, second = harness.inference.calls
    assert first.style_keys == second.style_keys
    assert first.style_shapes == second.style_shapes == [(171, 256, 3)]
    # Another tile size is another resized copy.
    assert await harness.runner.run(harness.job(tile_size=128)) is Outcome.SUCCEEDED
    assert harness.storage.downloads.count("img_style") == 2


async def test_max_side_shrinks_the_content_before_stylizing_and_never_enlarges() -> None:
    harness = Harness(_image(300, 200), tile_size=256)
    assert await harness.runner.run(harness.job(max_side=150)) is Outcome.SUCCEEDED
    assert harness.inference.calls[0].tile_shapes == [(100, 150, 3)]
    assert harness.result_pixels().shape == (100, 150, 3)

    larger = Harness(_image(300, 200), tile_size=512)
    assert await larger.runner.run(larger.job(max_side=1000)) is Outcome.SUCCEEDED
    assert larger.result_pixels().shape == (200, 300, 3)


async def test_histogram_match_recolours_styles_once_against_the_whole_content() -> None:
    harness = Harness(_image(300, 200), tile_size=128)
    harness.content[:, :, 2] = 0  # no blue anywhere in the photo
    harness.storage.put("img_content", harness.content)

    await harness.runner.run(harness.job(histogram_match=True, luminance_only=True))

    calls = harness.inference.calls
    assert len({tuple(call.style_keys) for call in calls}) == 1  # same style for every tile
    assert calls[0].style_keys[0].endswith(f"@128:hm-{_sha(harness)[:16]}")
    assert not calls[0].params.histogram_match  # already applied
    assert calls[0].params.luminance_only  # per pixel: inference does it per tile
    assert harness.inference.style_pixels[0][:, :, 2].max() == 0


async def test_histogram_match_recolours_the_output_for_models_of_trained_styles_only() -> None:
    harness = Harness(_image(300, 200), tile_size=128, trained_styles_only=True)
    harness.content[:, :, 2] = 0  # no blue anywhere in the photo
    harness.storage.put("img_content", harness.content)

    await harness.runner.run(harness.job(histogram_match=True))

    calls = harness.inference.calls
    # The style goes as stored (its key names the catalog file the model was trained on)...
    assert all(call.style_keys[0].endswith("@128") for call in calls)
    assert not calls[0].params.histogram_match
    # ...and the blended output (inverted tiles: blue 255) takes the content's colours.
    assert harness.result_pixels()[:, :, 2].max() == 0


def _answer(value: bool) -> Callable[[str, str], Awaitable[bool]]:
    async def answer(_version: str, _endpoint: str) -> bool:
        return value

    return answer


def _sha(harness: Harness) -> str:
    return hashlib.sha256(harness.storage.images["img_content"]).hexdigest()


async def test_batches_shrink_to_stay_under_the_message_size() -> None:
    style_bytes = 128 * 85 * 3  # the 300x200 style shrunk to the 128 px tile size
    harness = Harness(
        _image(300, 200),
        tile_size=128,
        batch_size=4,
        max_batch_bytes=style_bytes + 2 * 128 * 128 * 3,
    )

    assert await harness.runner.run(harness.job(overlap=16)) is Outcome.SUCCEEDED
    assert [len(call.tile_shapes) for call in harness.inference.calls] == [2, 2, 2]


async def test_job_canceled_between_batches_stops_without_a_result() -> None:
    harness = Harness(_image(300, 200), tile_size=128, batch_size=2)
    harness.inference.after_call = lambda calls: harness.canceled.add(JOB_ID)

    outcome = await harness.runner.run(harness.job(overlap=16))

    assert outcome is Outcome.CANCELED
    assert len(harness.inference.calls) == 1
    assert harness.storage.uploads == []
    assert harness.events.of_kind("succeeded") == []
    assert harness.events.of_kind("failed") == []


async def test_job_canceled_before_it_starts_is_skipped_silently() -> None:
    harness = Harness(_image(100, 80))
    harness.canceled.add(JOB_ID)

    assert await harness.runner.run(harness.job()) is Outcome.CANCELED
    assert harness.events.published == []
    assert harness.inference.calls == []


async def test_redelivered_job_stores_the_same_bytes_under_the_same_id() -> None:
    harness = Harness(_image(300, 200), tile_size=128)
    await harness.runner.run(harness.job(seed=1))
    await harness.runner.run(harness.job(seed=1), delivery=2)

    first, second = harness.storage.uploads
    assert first["image_id"] == second["image_id"]
    assert first["data"] == second["data"]
    succeeded = harness.events.of_kind("succeeded")
    assert [e["event_id"] for e in succeeded] == [f"exec-succeeded-{JOB_ID}"] * 2
    assert harness.runner.status.redeliveries == 1


async def test_the_result_url_storage_signs_is_carried_in_the_success_event() -> None:
    harness = Harness(_image(100, 80), result_url_ttl_s=900)
    assert await harness.runner.run(harness.job()) is Outcome.SUCCEEDED

    assert harness.storage.uploads[0]["link_ttl_s"] == 900
    [succeeded] = harness.events.of_kind("succeeded")
    assert succeeded["link"].url.startswith("http://files.test/img_")


async def test_no_result_url_is_asked_for_when_its_lifetime_is_zero() -> None:
    harness = Harness(_image(100, 80))
    assert await harness.runner.run(harness.job()) is Outcome.SUCCEEDED

    assert harness.storage.uploads[0]["link_ttl_s"] == 0
    assert "link" not in harness.events.of_kind("succeeded")[0]


async def test_result_already_stored_by_an_earlier_attempt_still_succeeds() -> None:
    harness = Harness(_image(100, 80))
    harness.storage.upload_errors.append(AlreadyExists("image img_res_x exists"))

    assert await harness.runner.run(harness.job()) is Outcome.SUCCEEDED
    assert harness.events.of_kind("succeeded")[0]["result_image_id"] == result_image_id(JOB_ID)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InvalidArgument("alpha must be between 0 and 1"), "INVALID_ARGUMENT"),
        (FailedPrecondition("model version x is not loaded here"), "FAILED_PRECONDITION"),
        (ResourceExhausted("tile too large"), "RESOURCE_EXHAUSTED"),
    ],
)
async def test_inference_refusing_the_input_fails_the_job_at_once(
    error: Exception, code: str
) -> None:
    harness = Harness(_image(100, 80))
    harness.inference.errors.append(error)

    assert await harness.runner.run(harness.job()) is Outcome.FAILED
    failed = harness.events.of_kind("failed")
    assert len(failed) == 1
    assert failed[0]["error_code"] == code
    assert failed[0]["error_message"] == error.args[0]
    assert failed[0]["event_id"] == f"exec-failed-{JOB_ID}"
    assert harness.storage.uploads == []
    assert harness.runner.status.jobs_failed == 1


async def test_undecodable_content_fails_with_an_actionable_message() -> None:
    harness = Harness(_image(100, 80))
    harness.storage.images["img_content"] = b"GIF89a not really an image"

    assert await harness.runner.run(harness.job()) is Outcome.FAILED
    failed = harness.events.of_kind("failed")[0]
    assert failed["error_code"] == "INVALID_ARGUMENT"
    assert "content image img_content" in failed["error_message"]
    assert "PNG, JPEG or WebP" in failed["error_message"]
    assert harness.inference.calls == []


async def test_missing_input_image_fails_without_retry() -> None:
    harness = Harness(_image(100, 80))
    harness.storage.download_errors.append(NotFound("image img_content does not exist"))

    assert await harness.runner.run(harness.job()) is Outcome.FAILED
    assert harness.events.of_kind("failed")[0]["error_code"] == "NOT_FOUND"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (Unavailable("storage is down"), "UNAVAILABLE"),
        (DeadlineExceeded("inference took too long"), "DEADLINE_EXCEEDED"),
        (ConnectionResetError("connection reset"), "UNAVAILABLE"),
        (RuntimeError("a bug"), "INTERNAL"),
    ],
)
async def test_transient_failures_ask_for_redelivery_without_reporting(
    error: Exception, code: str
) -> None:
    harness = Harness(_image(100, 80))
    harness.inference.errors.append(error)

    with pytest.raises(RetryLater) as caught:
        await harness.runner.run(harness.job(), delivery=1)
    assert caught.value.code == code
    assert harness.events.of_kind("failed") == []
    assert harness.events.of_kind("succeeded") == []
    assert harness.runner.status.running_job_ids == []


async def test_transient_failure_on_the_last_delivery_fails_the_job() -> None:
    harness = Harness(_image(100, 80))
    harness.inference.errors.append(Unavailable("inference is down"))

    outcome = await harness.runner.run(harness.job(), delivery=MAX_DELIVER)

    assert outcome is Outcome.FAILED
    failed = harness.events.of_kind("failed")[0]
    assert failed["error_code"] == "UNAVAILABLE"
    assert f"after {MAX_DELIVER} attempts" in failed["error_message"]
    assert "inference is down" in failed["error_message"]


async def test_a_transient_failure_then_a_redelivery_succeeds() -> None:
    harness = Harness(_image(100, 80))
    harness.storage.download_errors.append(Unavailable("storage restarting"))

    with pytest.raises(RetryLater):
        await harness.runner.run(harness.job())
    assert await harness.runner.run(harness.job(), delivery=2) is Outcome.SUCCEEDED
    assert len(harness.events.of_kind("succeeded")) == 1


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"tile_size": 32}, "params.tile_size"),
        ({"tile_size": 128, "overlap": 65}, "params.overlap"),
        ({"output_format": "gif"}, "params.output_format"),
        ({"quality": 0, "output_format": "jpeg"}, "params.quality"),
    ],
)
async def test_invalid_job_parameters_fail_the_job(params: dict[str, object], field: str) -> None:
    harness = Harness(_image(100, 80))
    assert await harness.runner.run(harness.job(**params)) is Outcome.FAILED
    failed = harness.events.of_kind("failed")[0]
    assert failed["error_code"] == "INVALID_ARGUMENT"
    assert harness.inference.calls == []


async def test_job_without_styles_fails() -> None:
    harness = Harness(_image(100, 80))
    job = replace(harness.job(), style_image_ids=())
    assert await harness.runner.run(job) is Outcome.FAILED
    assert "1 to 4 style images" in harness.events.of_kind("failed")[0]["error_message"]


async def test_jpeg_output_uses_the_requested_quality() -> None:
    harness = Harness(_image(100, 80))
    await harness.runner.run(harness.job(output_format="jpeg", quality=50))
    upload = harness.storage.uploads[0]
    assert upload["content_type"] == "image/jpeg"
    assert upload["filename"].endswith(".jpg")
    assert codec.sniff_format(upload["data"]) == "jpeg"


async def test_progress_publish_failure_does_not_fail_the_job() -> None:
    harness = Harness(_image(100, 80))

    async def broken(*args: object, **kwargs: object) -> None:
        raise ConnectionError("nats is gone")

    harness.events.progress = broken  # type: ignore[method-assign]
    assert await harness.runner.run(harness.job()) is Outcome.SUCCEEDED
    assert len(harness.events.of_kind("succeeded")) == 1


async def test_failure_to_publish_the_outcome_is_retried() -> None:
    harness = Harness(_image(100, 80))

    async def broken(*args: object, **kwargs: object) -> None:
        raise TimeoutError("no ack from JetStream")

    harness.events.succeeded = broken  # type: ignore[method-assign]
    with pytest.raises(RetryLater) as caught:
        await harness.runner.run(harness.job())
    assert caught.value.code == "DEADLINE_EXCEEDED"


def _constant(size: int) -> Callable[[str, str], Awaitable[int]]:
    async def tile_size_for(_version: str, _endpoint: str) -> int:
        return size

    return tile_size_for


async def test_a_version_with_its_own_endpoint_is_asked_there() -> None:
    asked: list[tuple[str, str, str]] = []

    async def tile_size_for(version: str, endpoint: str) -> int:
        asked.append(("tile_size", version, endpoint))
        return 128

    async def trained_styles_only(version: str, endpoint: str) -> bool:
        asked.append(("trained_styles_only", version, endpoint))
        return False

    harness = Harness(_image(200, 100))
    harness.runner = JobRunner(
        harness.storage,
        harness.inference,
        harness.events,
        canceled=harness.canceled,
        tile_size_for=tile_size_for,
        trained_styles_only=trained_styles_only,
    )
    job = replace(
        harness.job(histogram_match=True), inference_endpoint="inference-v2.gouache.svc:50055"
    )
    assert await harness.runner.run(job) is Outcome.SUCCEEDED
    assert asked == [
        ("tile_size", "gatys.lite0-fast", "inference-v2.gouache.svc:50055"),
        ("trained_styles_only", "gatys.lite0-fast", "inference-v2.gouache.svc:50055"),
    ]
    assert {call.endpoint for call in harness.inference.calls} == {"inference-v2.gouache.svc:50055"}

    assert await harness.runner.run(replace(job, job_id=JOB_ID[:-1] + "X", inference_endpoint=""))
    assert asked[-1] == ("trained_styles_only", "gatys.lite0-fast", "")
    assert harness.inference.calls[-1].endpoint == ""
