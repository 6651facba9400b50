"""CreateJob validation: each bad field gives INVALID_ARGUMENT naming it; idempotency fingerprints."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gouache.runtime.errors import InvalidArgument
from services.jobs.domain.requests import (
    JobRequest,
    StylizeParams,
    check_overlap,
    choose_idempotency_key,
    validate_job_request,
)

CONTENT = "http://127.0.0.1:8080/v1/files/img_content"
STYLE = "http://127.0.0.1:8080/v1/files/img_style"


def request(**params: object) -> JobRequest:
    return JobRequest(
        content_url=CONTENT,
        style_urls=(STYLE,),
        params=StylizeParams(**params),  # type: ignore[arg-type]
    )


def test_a_minimal_request_is_normalized() -> None:
    valid = validate_job_request(request())
    assert valid.model_version == "default"
    assert valid.params.output_format == "png"
    assert valid.params.tile_size is None


def test_a_full_request_passes() -> None:
    valid = validate_job_request(
        JobRequest(
            content_url=f" {CONTENT} ",
            style_urls=(STYLE, STYLE + "2"),
            model_version="gatys",
            params=StylizeParams(
                alpha=0.7,
                tv_weight=1e-5,
                luminance_only=True,
                tile_size=768,
                overlap=64,
                seed=42,
                weights=(0.7, 0.3),
                prompt="",
                output_format="JPEG",
                quality=85,
            ),
            idempotency_key="k-1",
        )
    )
    assert valid.content_url == CONTENT
    assert valid.params.output_format == "jpeg"
    assert valid.params.prompt is None
    assert valid.idempotency_key == "k-1"


def _bad(req: JobRequest, field: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        validate_job_request(req)
    assert caught.value.field == field
    assert message in caught.value.message


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"alpha": 1.7}, "params.alpha", "params.alpha must be between 0 and 1, got 1.7"),
        ({"alpha": -0.1}, "params.alpha", "got -0.1"),
        ({"alpha": float("nan")}, "params.alpha", "between 0 and 1"),
        ({"tv_weight": -1.0}, "params.tv_weight", "0 or more, got -1"),
        ({"tile_size": 32}, "params.tile_size", "between 64 and 2048 pixels"),
        ({"tile_size": 4096}, "params.tile_size", "got 4096"),
        ({"tile_size": 512, "overlap": 257}, "params.overlap", "between 0 and 256"),
        ({"overlap": -1}, "params.overlap", "0 or more"),
        ({"seed": -1}, "params.seed", "between 0 and"),
        ({"weights": (0.5, 0.5)}, "params.weights", "2 values but there are 1 style_urls"),
        ({"weights": (-1.0,)}, "params.weights[0]", "0 or more, got -1"),
        ({"weights": (0.0,)}, "params.weights", "sum to a positive number"),
        ({"weights": (float("inf"),)}, "params.weights[0]", "finite"),
        ({"output_format": "gif"}, "params.output_format", "png, jpeg, webp, got 'gif'"),
        ({"quality": 0}, "params.quality", "between 1 and 100, got 0"),
        ({"quality": 101}, "params.quality", "got 101"),
        ({"prompt": "x" * 501}, "params.prompt", "501 characters; at most 500"),
    ],
)
def test_bad_params(params: dict[str, object], field: str, message: str) -> None:
    _bad(request(**params), field, message)


def test_edges_are_allowed() -> None:
    validate_job_request(
        request(alpha=0.0, tile_size=64, overlap=32, quality=1, prompt="x" * 500, tv_weight=0.0)
    )
    validate_job_request(request(alpha=1.0, tile_size=2048, overlap=1024, quality=100))


def test_content_url_is_required() -> None:
    _bad(replace(request(), content_url="  "), "content_url", "content_url is required")


def test_no_style() -> None:
    _bad(replace(request(), style_urls=()), "style_urls", "at least one style")


def test_five_styles() -> None:
    _bad(replace(request(), style_urls=(STYLE,) * 5), "style_urls", "5 entries; at most 4")


def test_empty_style_url_names_its_index() -> None:
    _bad(replace(request(), style_urls=(STYLE, "")), "style_urls[1]", "style_urls[1] is empty")


def test_url_too_long() -> None:
    _bad(replace(request(), content_url="http://x/" + "a" * 3000), "content_url", "at most 2048")


def test_idempotency_key_too_long() -> None:
    _bad(replace(request(), idempotency_key="k" * 201), "idempotency_key", "at most 200")


def test_overlap_against_the_model_tile_size() -> None:
    check_overlap(StylizeParams(overlap=128), 256)
    with pytest.raises(InvalidArgument, match="between 0 and 128 pixels") as caught:
        check_overlap(StylizeParams(overlap=129), 256)
    assert caught.value.field == "params.overlap"


@pytest.mark.parametrize(
    ("body", "header", "expected"),
    [("", None, ""), ("a", None, "a"), ("", "b", "b"), ("c", "c", "c"), (" d ", "", "d")],
)
def test_idempotency_key_from_body_or_header(body: str, header: str | None, expected: str) -> None:
    assert choose_idempotency_key(body, header) == expected


def test_conflicting_idempotency_keys() -> None:
    with pytest.raises(InvalidArgument, match="differ") as caught:
        choose_idempotency_key("a", "b")
    assert caught.value.field == "idempotency_key"


def test_fingerprint_is_equal_for_the_same_job() -> None:
    a = validate_job_request(replace(request(alpha=0.5), idempotency_key="one"))
    b = validate_job_request(
        replace(request(alpha=0.5, output_format="PNG", tile_size=0), model_version="default")
    )
    assert a.fingerprint() == b.fingerprint()


@pytest.mark.parametrize(
    "change",
    [
        {"content_url": CONTENT + "x"},
        {"style_urls": (STYLE + "x",)},
        {"model_version": "gatys-fast"},
        {"params": StylizeParams(alpha=0.6)},
        {"params": StylizeParams(alpha=0.5, seed=1)},
    ],
)
def test_fingerprint_differs_for_another_job(change: dict[str, object]) -> None:
    base = validate_job_request(request(alpha=0.5))
    other = validate_job_request(replace(base, **change))  # type: ignore[arg-type]
    assert base.fingerprint() != other.fingerprint()


def test_params_round_trip_through_dict() -> None:
    params = StylizeParams(alpha=0.25, weights=(1.0, 2.0), seed=7, prompt="p", quality=80)
    assert StylizeParams.from_dict(params.to_dict()) == params
    assert "alpha" not in StylizeParams().to_dict()
