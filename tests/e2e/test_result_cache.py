"""The result cache through REST on the embedded mesh: a repeated request comes back cached."""

from __future__ import annotations

import httpx
import pytest

from gouache.cli.mesh import Mesh
from gouache.client import GouacheClient
from tests.e2e.images import small
from tests.e2e.users import new_user

pytestmark = pytest.mark.slow


def _inputs(client: GouacheClient) -> tuple[str, str]:
    content = client.upload(small("coffee", 80), filename="coffee.png")
    style = client.upload(small("immunohistochemistry", 56), filename="tissue.png", kind="style")
    return content, style


def test_a_repeated_request_is_cached_for_its_owner_only(mesh: Mesh, admin: GouacheClient) -> None:
    base = mesh.config.public_url
    with new_user(admin, base) as alice, new_user(admin, base) as bob:
        content, style = _inputs(alice)
        params = {"alpha": 0.8}
        first = alice.create_job(content, [style], model_version="adain", params=params)
        assert first["status"] == "pending"
        assert not first["cached"]
        ran = alice.wait(first["job_id"], timeout_s=120, poll_s=0.1)
        assert ran.status == "succeeded", ran.raw
        assert ran.raw["cached"] is False
        assert ran.latency_ms > 0

        # The same bytes uploaded again: the cache looks at content, not URLs.
        content_again, style_again = _inputs(alice)
        second = alice.create_job(
            content_again, [style_again], model_version="adain", params=params
        )
        assert second["cached"] is True
        assert second["status"] == "succeeded"
        hit = alice.get_job(second["job_id"])
        assert hit["cached"] is True
        assert hit["status"] == "succeeded"
        assert hit["result_image_id"] == ran.raw["result_image_id"]
        assert hit["latency_ms"] == 0
        assert alice.download(hit["result_url"]) == alice.download(str(ran.result_url))

        # no_cache runs the model again.
        forced = alice.create_job(
            content, [style], model_version="adain", params=params, no_cache=True
        )
        assert forced["cached"] is False
        assert forced["status"] == "pending"
        assert alice.wait(forced["job_id"], timeout_s=120, poll_s=0.1).status == "succeeded"

        # Bob sends the same bytes: his job runs; Alice's result is not his to see.
        bobs_content, bobs_style = _inputs(bob)
        theirs = bob.create_job(bobs_content, [bobs_style], model_version="adain", params=params)
        assert theirs["cached"] is False
        assert theirs["status"] == "pending"
        done = bob.wait(theirs["job_id"], timeout_s=120, poll_s=0.1)
        assert done.status == "succeeded", done.raw
        assert done.raw["cached"] is False
        assert done.raw["result_image_id"] != ran.raw["result_image_id"]
        with httpx.Client(base_url=base) as http:
            token = bob.token()
            peek = http.get(
                f"/v1/images/{ran.raw['result_image_id']}",
                headers={"authorization": f"Bearer {token}"},
            )
        assert peek.status_code == 404


def test_the_hit_benchmark_runs_and_reports(mesh: Mesh, admin: GouacheClient) -> None:
    """A smoke of loadtests/result_cache.py with tiny counts on the session's mesh."""
    from loadtests.result_cache import measure

    metrics_url = f"http://127.0.0.1:{mesh.config.ports.metrics['jobs']}/metrics"
    with new_user(admin, mesh.config.public_url) as user:
        report = measure(user, mesh.config.public_url, metrics_url, hits=3, misses=2, side=64)
    assert report["hit"]["answered_from_cache"] == 3
    assert report["hit"]["server_calls"] == 3
    assert report["hit"]["server_mean_ms"] > 0
    assert 0 <= report["hit"]["server_share_under_50ms"] <= 1
    assert report["miss_no_cache"]["answered_from_cache"] == 0
    assert report["miss_no_cache"]["server_calls"] == 2
    assert report["hit"]["envoy_upstream_ms"]["median"] is not None
