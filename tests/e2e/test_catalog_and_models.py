"""The rest of the public surface through Envoy: styles, models, cancel, metrics."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from gouache import catalogue
from gouache.cli.mesh import Mesh
from gouache.client import ApiError, GouacheClient
from tests.e2e.images import small
from tests.e2e.users import new_user

pytestmark = pytest.mark.slow


def test_curated_styles_are_listed_and_usable(mesh: Mesh, admin: GouacheClient) -> None:
    curated = admin.list_styles(curated=True)
    assert {style["title"] for style in curated} >= {"Rocket", "Coffee"}
    assert all(style["curated"] for style in curated)
    content_url = admin.upload(small("chelsea", 48), filename="cat.png")
    job = admin.create_job(content_url, [curated[0]["file_url"]], model_version="gatys-fast")
    assert admin.wait(job["job_id"], timeout_s=240).status == "succeeded"


def test_the_shipped_styles_are_listed_with_their_provenance(
    mesh: Mesh, admin: GouacheClient
) -> None:
    # gouache up imports the package's eight without being asked; --styles DIR adds its own.
    listed = admin.list_styles(curated=True)
    shipped = {style.title: style for style in catalogue.curated_styles()}
    assert len(shipped) == 8
    assert {style["title"] for style in listed} == {*shipped, "Rocket", "Coffee"}
    for style in listed:
        if style["title"] not in shipped:
            continue
        expected = shipped[style["title"]]
        assert (style["artist"], style["year"], style["license"]) == (
            expected.artist,
            expected.year,
            expected.license,
        )
        assert style["provenance"].startswith(expected.source)
        assert style["style_id"].startswith("sty_")
        assert style["file_url"]


def test_models_lists_versions_and_aliases(mesh: Mesh, admin: GouacheClient) -> None:
    models = admin.list_models()
    assert {v["name"] for v in models["versions"]} >= {"gatys.lite0-v1", "gatys.lite0-fast"}
    routes = {route["alias"]: route["targets"] for route in models["routes"]}
    assert routes["gatys-fast"][0]["model_version"] == "gatys.lite0-fast"


def test_cancel_then_cancel_again(mesh: Mesh, admin: GouacheClient) -> None:
    # 64 tiles of 64 px, optimised a batch at a time, keep the worker busy far longer than
    # the cancel sent right after the create takes to arrive: the job is never final first.
    content_url = admin.upload(small("coffee", 512), filename="c.png")
    style_url = admin.upload(small("rocket", 64), filename="r.png", kind="style")
    job = admin.create_job(
        content_url,
        [style_url],
        model_version="gatys-fast",
        params={"tile_size": 64, "overlap": 0},
    )
    first = admin.cancel_job(job["job_id"])
    assert first["status"] == "canceled", first
    assert admin.cancel_job(job["job_id"])["status"] == "canceled"
    finished = admin.get_job(job["job_id"])
    assert finished["status"] == "canceled"
    assert not finished.get("result_url")


def _feedback_accepted(client: GouacheClient, job_id: str, rating: int) -> dict[str, Any]:
    """Submit a rating, waiting (bounded) for feedback to learn the job's outcome."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return client.submit_feedback(job_id, rating)
        except ApiError as error:
            if error.status != 404 or time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def test_feedback_on_another_users_job_is_404(mesh: Mesh, admin: GouacheClient) -> None:
    with (
        new_user(admin, mesh.config.public_url) as alice,
        new_user(admin, mesh.config.public_url) as bob,
    ):
        content_url = alice.upload(small("astronaut", 48), filename="a.png")
        style_url = alice.upload(small("rocket", 48), filename="s.png", kind="style")
        job = alice.create_job(content_url, [style_url], model_version="gatys-fast")
        assert alice.wait(job["job_id"], timeout_s=240).status == "succeeded"
        # The job exists for feedback: its owner may rate it ...
        _feedback_accepted(alice, job["job_id"], 5)
        # ... and to another user it does not exist at all.
        with pytest.raises(ApiError) as caught:
            bob.submit_feedback(job["job_id"], 4)
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
