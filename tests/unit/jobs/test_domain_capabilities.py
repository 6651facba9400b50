"""Refusing at creation what a model version cannot paint: prompts, untrained styles."""

from __future__ import annotations

import pytest

from gouache import catalogue
from gouache.runtime.errors import InvalidArgument
from services.jobs.domain.capabilities import StyleImage, check_params, check_styles
from services.jobs.domain.requests import StylizeParams
from services.jobs.domain.routing import ModelVersion

FEEDFORWARD = ModelVersion("feedforward.lite0-v1", "feedforward", "lite0", 512)
ADAIN = ModelVersion("adain.lite0-v1", "adain", "lite0", 512)
GATYS = ModelVersion("gatys.lite0-v1", "gatys", "lite0", 512)
TRAINED = catalogue.trained_styles(FEEDFORWARD.name)
OTHER = "ab" * 32


@pytest.mark.parametrize("version", [FEEDFORWARD, ADAIN, GATYS], ids=lambda v: v.family)
def test_a_prompt_is_refused_by_every_family(version: ModelVersion) -> None:
    with pytest.raises(InvalidArgument) as caught:
        check_params(version, StylizeParams(prompt="in the manner of Turner"))
    assert caught.value.field == "params.prompt"
    assert caught.value.reason == "unsupported_parameter"
    assert version.name in caught.value.message
    assert "Remove params.prompt" in caught.value.message


def test_what_every_family_honours_passes() -> None:
    params = StylizeParams(alpha=0.5, tv_weight=1.0, luminance_only=True, seed=3)
    for version in (FEEDFORWARD, ADAIN, GATYS):
        check_params(version, params)


def test_feedforward_takes_the_trained_files_and_their_curated_copies() -> None:
    originals = [StyleImage(f"style_urls[{i}]", s.sha256) for i, s in enumerate(TRAINED[:4])]
    copies = [StyleImage(f"style_urls[{i}]", s.copies[0]) for i, s in enumerate(TRAINED[4:])]
    check_styles(FEEDFORWARD, originals, TRAINED)
    check_styles(FEEDFORWARD, copies, TRAINED)


def test_feedforward_refuses_another_style_naming_the_field_and_the_trained_ones() -> None:
    styles = [StyleImage("style_urls[0]", TRAINED[0].sha256), StyleImage("style_urls[1]", OTHER)]
    with pytest.raises(InvalidArgument) as caught:
        check_styles(FEEDFORWARD, styles, TRAINED)
    error = caught.value
    assert (error.field, error.reason) == ("style_urls[1]", "untrained_style")
    for style in TRAINED:
        assert style.title in error.message
    assert "GET /v1/styles?curated=true" in error.message
    assert '"adain"' in error.message


def test_versions_that_paint_any_style_or_are_unknown_are_not_checked() -> None:
    anything = [StyleImage("style_urls[0]", OTHER)]
    check_styles(ADAIN, anything, catalogue.trained_styles(ADAIN.name))
    check_styles(GATYS, anything, ())
    # A feedforward version an operator registered: the catalogue does not know its styles.
    check_styles(ModelVersion("ff-canary", "feedforward", "lite0", 512), anything, None)
