"""Each model family through the public REST API: adain and feedforward next to gatys."""

from __future__ import annotations

from pathlib import Path

import pytest

from gouache import catalogue
from gouache.cli.mesh import Mesh
from gouache.client import ApiError, GouacheClient
from gouache.imaging.codec import validate_and_decode
from tests.e2e.images import small

pytestmark = pytest.mark.slow

STARRY_NIGHT = Path(__file__).resolve().parents[3] / "shared/data/styles/vangogh_starry_night.jpg"


@pytest.mark.parametrize(
    ("asked", "ran"),
    [("adain", "wct.lite0-v1"), ("adain.lite0-v1.1", "adain.lite0-v1.1")],
)
def test_one_pass_models_stylize_any_style_in_the_contents_size(
    mesh: Mesh, admin: GouacheClient, asked: str, ran: str
) -> None:
    # The "adain" alias follows the best arbitrary-style model; AdaIN itself stays by name.
    cat = small("chelsea", 120)
    content_url = admin.upload(cat, filename="cat.png")
    style_url = admin.upload(small("hubble_deep_field", 64), filename="stars.png", kind="style")
    job = admin.create_job(content_url, [style_url], model_version=asked, params={"alpha": 0.9})
    result = admin.wait(job["job_id"], timeout_s=120)
    assert (result.status, result.model_version) == ("succeeded", ran)
    assert result.result_url is not None
    content = validate_and_decode(cat).pixels
    output = validate_and_decode(admin.download(result.result_url)).pixels
    assert output.shape == content.shape
    assert (output != content).any()


def test_feedforward_refuses_an_untrained_style_at_creation_naming_the_trained_ones(
    mesh: Mesh, admin: GouacheClient
) -> None:
    content_url = admin.upload(small("coffee", 64), filename="coffee.png")
    style_url = admin.upload(small("rocket", 64), filename="rocket.png", kind="style")
    with pytest.raises(ApiError) as caught:
        admin.create_job(content_url, [style_url], model_version="feedforward")
    error = caught.value
    assert (error.status, error.code) == (400, 3)
    assert error.message.startswith("style_urls[0] is not a style feedforward.lite0-v1")
    for style in catalogue.trained_styles("feedforward.lite0-v1"):
        assert style.title in error.message
    assert "GET /v1/styles?curated=true" in error.message


def test_feedforward_paints_a_shipped_curated_style_named_by_its_id(
    mesh: Mesh, admin: GouacheClient
) -> None:
    curated = {style["title"]: style for style in admin.list_styles(curated=True)}
    wave = curated["The Great Wave off Kanagawa"]
    cat = small("chelsea", 96)
    content_url = admin.upload(cat, filename="cat.png")
    job = admin.create_job(content_url, [wave["style_id"]], model_version="feedforward")
    result = admin.wait(job["job_id"], timeout_s=120)
    assert (result.status, result.model_version) == ("succeeded", "feedforward.lite0-v1")
    assert result.result_url is not None
    output = validate_and_decode(admin.download(result.result_url)).pixels
    assert output.shape == validate_and_decode(cat).pixels.shape


def test_a_job_without_a_model_runs_the_fast_arbitrary_style_default(
    mesh: Mesh, admin: GouacheClient
) -> None:
    content_url = admin.upload(small("chelsea", 64), filename="cat.png")
    style_url = admin.upload(small("hubble_deep_field", 64), filename="stars.png", kind="style")
    job = admin.create_job(content_url, [style_url])
    assert job["model_version"] == catalogue.DEFAULT == "wct.lite0-v1"
    assert admin.wait(job["job_id"], timeout_s=120).status == "succeeded"


def test_a_prompt_is_refused_at_creation(mesh: Mesh, admin: GouacheClient) -> None:
    content_url = admin.upload(small("chelsea", 48), filename="cat.png")
    style_url = admin.upload(small("rocket", 48), filename="rocket.png", kind="style")
    with pytest.raises(ApiError) as caught:
        admin.create_job(content_url, [style_url], params={"prompt": "in the style of Turner"})
    assert (caught.value.status, caught.value.code) == (400, 3)
    assert caught.value.message.startswith(
        f"params.prompt cannot be honoured by {catalogue.DEFAULT} "
    )


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
