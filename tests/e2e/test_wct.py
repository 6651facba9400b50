"""The wct family through the public REST API: any style, several styles mixed, alpha."""

from __future__ import annotations

import numpy as np
import pytest

from gouache.cli.mesh import Mesh
from gouache.client import GouacheClient
from gouache.imaging.codec import validate_and_decode
from tests.e2e.images import small

pytestmark = pytest.mark.slow


def test_wct_paints_any_style_through_rest(mesh: Mesh, admin: GouacheClient) -> None:
    cat = small("chelsea", 120)
    content_url = admin.upload(cat, filename="cat.png")
    style_url = admin.upload(small("immunohistochemistry", 96), filename="tissue.png", kind="style")
    job = admin.create_job(content_url, [style_url], model_version="wct", params={"alpha": 1.0})
    result = admin.wait(job["job_id"], timeout_s=120)
    assert (result.status, result.model_version) == ("succeeded", "wct.lite0-v1")
    assert result.result_url is not None
    content = validate_and_decode(cat).pixels
    output = validate_and_decode(admin.download(result.result_url)).pixels
    assert output.shape == content.shape
    # The stained tissue is brown on pale blue; the grey-and-orange cat takes its palette.
    style = validate_and_decode(small("immunohistochemistry", 96)).pixels
    moved = np.abs(output.mean(axis=(0, 1)) - style.mean(axis=(0, 1))).sum()
    before = np.abs(content.mean(axis=(0, 1)) - style.mean(axis=(0, 1))).sum()
    assert moved < before


def test_wct_mixes_two_styles_with_weights(mesh: Mesh, admin: GouacheClient) -> None:
    content_url = admin.upload(small("astronaut", 96), filename="astronaut.png")
    styles = [
        admin.upload(small(name, 64), filename=f"{name}.png", kind="style")
        for name in ("hubble_deep_field", "immunohistochemistry")
    ]
    job = admin.create_job(
        content_url, styles, model_version="wct.lite0-v1", params={"weights": [0.7, 0.3]}
    )
    result = admin.wait(job["job_id"], timeout_s=120)
    assert result.status == "succeeded"
    assert result.result_url is not None
    output = validate_and_decode(admin.download(result.result_url)).pixels
    assert output.shape[:2] == validate_and_decode(small("astronaut", 96)).pixels.shape[:2]
