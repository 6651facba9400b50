"""One description per call: the REST request and the gRPC message say the same."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gouache.client import operations as ops
from gouache.client.types import Batch, Job
from gouache.contracts.feedback.v1 import feedback_pb2
from gouache.contracts.jobs.v1 import jobs_pb2


def test_path_fields_fill_the_path_and_the_rest_is_query_or_body() -> None:
    waited = ops.wait_job("job_1", 12.5).rest()
    assert (waited.method, waited.path) == ("GET", "/v1/jobs/job_1:wait")
    assert waited.params == {"timeout": "12.500s"}
    assert waited.json is None
    canceled = ops.cancel_job("job_1").rest()
    assert (canceled.method, canceled.path, canceled.json) == ("POST", "/v1/jobs/job_1:cancel", {})
    styles = ops.list_styles(True, 100, "").rest()
    assert styles.params == {"curated": "true", "page_size": "100"}
    deleted = ops.delete_webhook("wh_1").rest()
    assert (deleted.method, deleted.path) == ("DELETE", "/v1/webhooks/wh_1")


def test_the_grpc_request_is_parsed_from_the_same_fields() -> None:
    params = ops.stylize_params({"seed": 7}, weights=[0.6, 0.4], alpha=0.5, preserve_color=True)
    operation = ops.create_job(
        "c",
        ["s1", "s2"],
        model_version="adain",
        params=params,
        idempotency_key="k",
        no_cache=True,
        lane="preview",
    )
    request = operation.grpc_request()
    assert isinstance(request, jobs_pb2.CreateJobRequest)
    assert (request.content_url, list(request.style_urls)) == ("c", ["s1", "s2"])
    assert (request.idempotency_key, request.no_cache, request.lane) == ("k", True, "preview")
    assert request.params.seed == 7
    assert request.params.alpha == pytest.approx(0.5)
    assert request.params.luminance_only
    assert operation.rest().json == {
        "content_url": "c",
        "style_urls": ["s1", "s2"],
        "model_version": "adain",
        "params": {"seed": 7, "weights": [0.6, 0.4], "alpha": 0.5, "luminance_only": True},
        "idempotency_key": "k",
        "no_cache": True,
        "lane": "preview",
    }
    assert operation.repeatable
    assert not ops.create_job(
        "c", ["s"], model_version="", params={}, idempotency_key="", no_cache=False, lane=""
    ).repeatable


def test_usage_windows_are_rfc3339_and_must_be_aware() -> None:
    since = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    usage = ops.get_usage(since, None, "usr_1")
    assert usage.rest().params == {"since": "2026-11-30T12:00:00Z", "user_id": "usr_1"}
    request = usage.grpc_request()
    assert isinstance(request, feedback_pb2.GetUsageRequest)
    assert request.since.ToDatetime(tzinfo=UTC) == since
    with pytest.raises(ValueError, match="no time zone"):
        ops.get_usage(datetime(2026, 11, 30), None, "")


def test_usage_of_one_project() -> None:
    usage = ops.get_usage(None, None, "", "month", "prj_team")
    assert usage.rest().params == {"group_by": "month", "project_id": "prj_team"}
    request = usage.grpc_request()
    assert isinstance(request, feedback_pb2.GetUsageRequest)
    assert (request.project_id, request.group_by) == ("prj_team", "month")


@pytest.mark.parametrize(
    ("styles", "weights", "message"),
    [
        (["a", "b"], [1.0], "1 weights for 2 styles"),
        ({"a": 1.0}, [1.0], "either in the styles mapping or as weights"),
        ("a.png", None, "not one string"),
    ],
)
def test_bad_styles_and_weights_are_refused(
    styles: list[str] | dict[str, float] | str, weights: list[float] | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ops.styles_and_weights(styles, weights)  # type: ignore[arg-type]


def test_wait_timeout_is_bounded_as_the_server_bounds_it() -> None:
    with pytest.raises(ValueError, match="timeout_s"):
        ops.wait_job("job_1", 61)
    with pytest.raises(ValueError, match="timeout_s"):
        ops.wait_job("job_1", 0)


def test_results_are_typed_and_still_mappings_of_the_json() -> None:
    data = {
        "job_id": "job_1",
        "status": "succeeded",
        "latency_ms": 812,
        "result_url": "http://x/r.png",
        "error": None,
        "created_at": "2026-11-30T19:58:41.120Z",
        "params": {"alpha": 0.8},
    }
    job = Job.from_json(data)
    assert (job.final, job.latency_ms, job.result_url) == (True, 812, "http://x/r.png")
    assert job.created_at == datetime(2026, 11, 30, 19, 58, 41, 120000, tzinfo=UTC)
    assert job["status"] == "succeeded"
    assert job.get("cached") is None
    assert dict(job) == data
    batch = Batch.from_json(
        {
            "batch_id": "b",
            "status": "running",
            "total": "2",
            "counts": {"succeeded": "1"},
            "items": [{"index": 1, "job_id": "j", "status": "succeeded"}],
        }
    )
    assert (batch.final, batch.total, batch.counts.succeeded) == (False, 2, 1)
    assert batch.page[0].index == 1
    assert batch["items"][0]["job_id"] == "j"
