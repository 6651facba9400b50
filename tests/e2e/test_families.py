"""Each model family through the public REST API: adain and feedforward next to gatys."""

from __future__ import annotations

from pathlib import Path

import pytest

from gouache.cli.mesh import Mesh
from gouache.client import GouacheClient
from gouache.imaging.codec import validate_and_decode
from tests.e2e.images import small

pytestmark = pytest.mark.slow

STARRY_NIGHT = Path(__file__).resolve().parents[3] / "shared/data/styles/vangogh_starry_night.jpg"


def test_adain_stylizes_any_style_in_the_contents_size(mesh: Mesh, admin: GouacheClient) -> None:
    cat = small("chelsea", 120)
    content_url = admin.upload(cat, filename="cat.png")
    style_url = admin.upload(small("hubble_deep_field", 64), filename="stars.png", kind="style")
    job = admin.create_job(content_url, [style_url], model_version="adain", params={"alpha": 0.9})
    result = admin.wait(job["job_id"], timeout_s=120)
    assert (result.status, result.model_version) == ("succeeded", "adain.lite0-v1")
    assert result.result_url is not None
    content = validate_and_decode(cat).pixels
    output = validate_and_decode(admin.download(result.result_url)).pixels
    assert output.shape == content.shape
    assert (output != content).any()


def test_feedforward_fails_a_style_it_was_not_trained_on_with_the_ones_it_knows(
    mesh: Mesh, admin: GouacheClient
) -> None:
    content_url = admin.upload(small("coffee", 64), filename="coffee.png")
    style_url = admin.upload(small("rocket", 64), filename="rocket.png", kind="style")
    job = admin.create_job(content_url, [style_url], model_version="feedforward")
    result = admin.wait(job["job_id"], timeout_s=120)
    assert result.status == "failed"
    assert result.error is not None
    assert "trained styles" in result.error
    assert "The Starry Night" in result.error


@pytest.mark.skipif(not STARRY_NIGHT.is_file(), reason="needs ../shared/data (trained style file)")
def test_feedforward_paints_a_trained_style_with_histogram_match(
    mesh: Mesh, admin: GouacheClient
) -> None:
    cat = small("chelsea", 96)
    content_url = admin.upload(cat, filename="cat.png")
    style_url = admin.upload(STARRY_NIGHT.read_bytes(), filename="starry.jpg", kind="style")
    job = admin.create_job(
        content_url, [style_url], model_version="feedforward", params={"histogram_match": True}
    )
    result = admin.wait(job["job_id"], timeout_s=120)
    assert (result.status, result.model_version) == ("succeeded", "feedforward.lite0-v1")
    assert result.result_url is not None
    output = validate_and_decode(admin.download(result.result_url)).pixels
    assert output.shape == validate_and_decode(cat).pixels.shape
    # histogram_match keeps the cat's warm palette (Starry Night alone turns it blue).
    assert output[..., 0].mean() > output[..., 2].mean()
