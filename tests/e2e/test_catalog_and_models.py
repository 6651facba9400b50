"""The rest of the public surface through Envoy: styles, models, cancel, metrics."""

from __future__ import annotations

import httpx
import pytest

from gouache.cli.mesh import Mesh
from gouache.client import ApiError, GouacheClient
from tests.e2e.images import small

pytestmark = pytest.mark.slow


def test_curated_styles_are_listed_and_usable(mesh: Mesh, admin: GouacheClient) -> None:
    curated = admin.list_styles(curated=True)
    assert {style["title"] for style in curated} >= {"Rocket", "Coffee"}
    assert all(style["curated"] for style in curated)
    content_url = admin.upload(small("chelsea", 48), filename="cat.png")
    job = admin.create_job(content_url, [curated[0]["file_url"]], model_version="gatys-fast")
    assert admin.wait(job["job_id"], timeout_s=240).status == "succeeded"


def test_models_lists_versions_and_aliases(mesh: Mesh, admin: GouacheClient) -> None:
    models = admin.list_models()
    assert {v["name"] for v in models["versions"]} >= {"gatys.lite0-v1", "gatys.lite0-fast"}
    routes = {route["alias"]: route["targets"] for route in models["routes"]}
    assert routes["gatys-fast"][0]["model_version"] == "gatys.lite0-fast"


def test_cancel_then_cancel_again(mesh: Mesh, admin: GouacheClient) -> None:
    content_url = admin.upload(small("coffee", 128), filename="c.png")
    style_url = admin.upload(small("rocket", 64), filename="r.png", kind="style")
    job = admin.create_job(content_url, [style_url], model_version="gatys-fast")
    first = admin.cancel_job(job["job_id"])
    if first["status"] == "canceled":
        assert admin.cancel_job(job["job_id"])["status"] == "canceled"
    else:  # the worker was faster than the cancel
        assert first["status"] == "succeeded"


def test_feedback_on_another_users_job_is_404(mesh: Mesh, admin: GouacheClient) -> None:
    with pytest.raises(ApiError) as caught:
        admin.submit_feedback("job_01ARZ3NDEKTSV4RRFFQ69G5FAV", 4)
    assert caught.value.status == 404


def test_rating_out_of_range_is_400(mesh: Mesh, admin: GouacheClient) -> None:
    with pytest.raises(ApiError) as caught:
        admin.submit_feedback("job_01ARZ3NDEKTSV4RRFFQ69G5FAV", 9)
    assert caught.value.status == 400
    assert "rating" in caught.value.message


def test_services_export_prometheus_metrics(mesh: Mesh, admin: GouacheClient) -> None:
    admin.list_models()
    text = httpx.get(f"http://127.0.0.1:{mesh.config.ports.metrics['jobs']}/metrics").text
    assert 'gouache_grpc_requests_total{code="OK",method="ListModels",service="jobs"}' in text
    assert "gouache_grpc_request_duration_seconds_bucket" in text
