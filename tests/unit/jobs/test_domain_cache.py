"""The result cache's rules: what makes two requests the same job, and what a hit looks like."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.jobs.domain.cache import (
    CacheEntry,
    CachePolicy,
    answered_from,
    entry_for,
    result_cache_key,
)
from services.jobs.domain.jobs import Job, JobStatus
from services.jobs.domain.requests import JobRequest, StylizeParams, validate_job_request
from services.jobs.domain.routing import ModelVersion

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
CONTENT = "c" * 64
STYLE_A = "a" * 64
STYLE_B = "b" * 64

ADAIN = ModelVersion("adain.lite0-v1.1", "adain", "lite0", 1024, {"eta_seconds": 2})
GATYS = ModelVersion("gatys.lite0-v1", "gatys", "lite0", 512, {"eta_seconds": 60, "steps": 200})


def _params(**fields: object) -> StylizeParams:
    """Params normalised as CreateJob normalises them."""
    styles = len(fields.get("weights", ())) or 1  # type: ignore[arg-type]
    request = JobRequest("http://x/c", ("http://x/s",) * styles, params=StylizeParams(**fields))  # type: ignore[arg-type]
    return validate_job_request(request).params


def _key(
    version: ModelVersion = ADAIN,
    content: str = CONTENT,
    styles: tuple[str, ...] = (STYLE_A,),
    params: StylizeParams | None = None,
) -> str:
    return result_cache_key(version, content, styles, params or _params())


def test_the_key_is_a_sha256_and_stable() -> None:
    key = _key()
    assert len(key) == 64
    assert int(key, 16) >= 0
    assert _key() == key


@pytest.mark.parametrize(
    ("what", "other"),
    [
        ("another version", lambda: _key(version=replace(ADAIN, name="adain.lite0-v1"))),
        ("another config", lambda: _key(version=replace(ADAIN, config={"eta_seconds": 3}))),
        ("another tile size", lambda: _key(version=replace(ADAIN, tile_size=512))),
        ("other content bytes", lambda: _key(content="d" * 64)),
        ("other style bytes", lambda: _key(styles=(STYLE_B,))),
        ("one more style", lambda: _key(styles=(STYLE_A, STYLE_B), params=_params())),
        ("alpha", lambda: _key(params=_params(alpha=0.5))),
        ("tv_weight", lambda: _key(params=_params(tv_weight=0.1))),
        ("luminance_only", lambda: _key(params=_params(luminance_only=True))),
        ("histogram_match", lambda: _key(params=_params(histogram_match=True))),
        ("tile_size", lambda: _key(params=_params(tile_size=256))),
        ("overlap", lambda: _key(params=_params(overlap=16))),
        ("output format", lambda: _key(params=_params(output_format="jpeg"))),
        ("quality", lambda: _key(params=_params(output_format="jpeg", quality=80))),
    ],
)
def test_what_changes_the_output_changes_the_key(what: str, other: object) -> None:
    assert callable(other)
    assert other() != _key(), what


def test_style_order_and_weights_are_part_of_the_key() -> None:
    both = (STYLE_A, STYLE_B)
    seventy = _key(styles=both, params=_params(weights=(0.7, 0.3)))
    assert seventy != _key(styles=both, params=_params(weights=(0.3, 0.7)))
    assert seventy != _key(styles=(STYLE_B, STYLE_A), params=_params(weights=(0.7, 0.3)))
    assert seventy == _key(styles=both, params=_params(weights=(0.7, 0.3)))
    # Unweighted means equal weights, but a different spelling stays a different key.
    assert _key(styles=both, params=_params()) != _key(
        styles=both, params=_params(weights=(1.0, 1.0))
    )


def test_a_default_spelled_out_is_conservatively_another_key() -> None:
    # alpha unset is the version's default, which jobs does not know to be 1: a miss, never
    # a wrong hit.
    assert _key(params=_params(alpha=1.0)) != _key()


def test_the_seed_counts_only_for_a_seeded_family() -> None:
    # adain has no randomness: any seed gives the same bytes.
    assert _key(params=_params(seed=7)) == _key(params=_params())
    # gatys starts from noise drawn with the seed; unset is seed 0 in inference.
    assert _key(GATYS, params=_params(seed=7)) != _key(GATYS, params=_params())
    assert _key(GATYS, params=_params(seed=0)) == _key(GATYS, params=_params())


def test_a_family_it_does_not_know_keeps_the_seed_as_sent() -> None:
    other = ModelVersion("x.v1", "newfamily", "lite0", 512)
    assert _key(other, params=_params(seed=0)) != _key(other, params=_params())


def test_what_does_not_change_the_output_does_not_change_the_key() -> None:
    # The output format as the client spelled it is normalised before the key.
    assert _key(params=_params(output_format="PNG ")) == _key()
    # Tile size 0 means the model's default, as unset does.
    assert _key(params=_params(tile_size=0)) == _key()
    # The description is not the model.
    assert _key(version=replace(ADAIN, description="renamed")) == _key()


def _job(**fields: object) -> Job:
    job = Job(
        job_id="job_2",
        owner_id="usr_a",
        status=JobStatus.PENDING,
        requested_model_version="adain",
        model_version=ADAIN.name,
        content_url="http://x/v1/files/img_c2",
        content_image_id="img_c2",
        style_urls=("http://x/v1/files/img_s2",),
        style_image_ids=("img_s2",),
        params=StylizeParams(),
        created_at=NOW,
        updated_at=NOW,
        eta_seconds=2,
        cache_key=_key(),
    )
    return replace(job, **fields)  # type: ignore[arg-type]


def _entry(**fields: object) -> CacheEntry:
    entry = CacheEntry(
        key=_key(),
        owner_id="usr_a",
        model_version=ADAIN.name,
        result_image_id="img_r1",
        source_job_id="job_1",
        created_at=NOW - timedelta(hours=1),
    )
    return replace(entry, **fields)  # type: ignore[arg-type]


def test_a_hit_is_a_job_that_succeeded_at_creation() -> None:
    job = answered_from(_job(), _entry())
    assert job.status is JobStatus.SUCCEEDED
    assert job.cached
    assert job.result_image_id == "img_r1"
    assert job.progress == 1.0
    assert job.latency_ms == 0
    assert job.eta_seconds == 0
    assert job.started_at == job.finished_at == job.updated_at == NOW
    # What the new request named stays its own.
    assert job.job_id == "job_2"
    assert job.content_image_id == "img_c2"


@pytest.mark.parametrize("entry", [_entry(owner_id="usr_b"), _entry(key="0" * 64)])
def test_an_entry_never_answers_another_owner_or_key(entry: CacheEntry) -> None:
    with pytest.raises(ValueError, match="does not answer"):
        answered_from(_job(), entry)


def test_a_success_is_stored_once_it_ran() -> None:
    succeeded = _job(
        status=JobStatus.SUCCEEDED, result_image_id="img_r2", job_id="job_3", finished_at=NOW
    )
    entry = entry_for(succeeded, NOW)
    assert entry == CacheEntry(
        key=_key(),
        owner_id="usr_a",
        model_version=ADAIN.name,
        result_image_id="img_r2",
        source_job_id="job_3",
        created_at=NOW,
    )


@pytest.mark.parametrize(
    "job",
    [
        _job(),  # not succeeded
        _job(status=JobStatus.FAILED),
        _job(status=JobStatus.SUCCEEDED, result_image_id="img_r", cached=True),  # a hit
        _job(status=JobStatus.SUCCEEDED, result_image_id="img_r", cache_key=None),  # older job
        _job(status=JobStatus.SUCCEEDED, result_image_id=None),
    ],
)
def test_nothing_else_is_stored(job: Job) -> None:
    assert entry_for(job, NOW) is None


def test_the_policy() -> None:
    assert CachePolicy().enabled
    assert not CachePolicy(max_entries=0).enabled
    assert CachePolicy(ttl_s=60).fresh_since(NOW) == NOW - timedelta(seconds=60)
