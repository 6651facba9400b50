"""Quality metrics and the histogram baseline; every family stylizes and interpolates monotonically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gouache.imaging.color import rgb_to_ycbcr, to_float32
from gouache.nst import registry
from gouache.nst.base import RGBImage, StyleFamily, StylizeControls
from gouache.nst.encoders import Lite0Encoder
from gouache.nst.families.feedforward import FeedforwardFamily
from gouache.nst.quality import HistogramBaseline, QualityMeter, histogram_baseline
from gouache.nst.specs import ModelSpec
from gouache.runtime.errors import InvalidArgument
from tests.unit.nst.images import downscale, resized

SIDE = 96
DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"
FULL = StylizeControls()


@pytest.fixture(scope="module")
def meter(encoder: Lite0Encoder) -> QualityMeter:
    return QualityMeter(encoder, side=SIDE)


def test_identical_images_are_at_distance_zero(
    meter: QualityMeter, astronaut: np.ndarray, stripes: np.ndarray
) -> None:
    assert meter.style_distance(stripes, stripes) == 0.0
    assert meter.content_distance(astronaut, astronaut) == 0.0


def test_distances_are_measured_at_the_evaluation_size(
    meter: QualityMeter, astronaut: np.ndarray
) -> None:
    larger = resized(astronaut, 160, 160)
    assert meter.style_distance(larger, astronaut) < 0.1
    assert meter.content_distance(larger, astronaut) < 0.1


def test_a_different_photo_is_far_in_style_and_content(
    meter: QualityMeter, astronaut: np.ndarray, chelsea: np.ndarray
) -> None:
    cat = resized(chelsea, 80, 80)
    assert meter.style_distance(cat, astronaut) > 0.3
    assert meter.content_distance(cat, astronaut) > 0.5


def test_baseline_takes_the_style_colours_and_keeps_the_layout(
    astronaut: np.ndarray, chelsea: np.ndarray
) -> None:
    out = histogram_baseline(astronaut, chelsea)
    assert out.shape == astronaut.shape
    for channel in range(3):
        ours = np.quantile(out[:, :, channel], [0.1, 0.5, 0.9])
        theirs = np.quantile(chelsea[:, :, channel], [0.1, 0.5, 0.9])
        assert np.abs(ours - theirs).max() <= 2
        # A monotone map per channel: brighter content stays at least as bright.
        order = np.argsort(astronaut[:, :, channel], axis=None, kind="stable")
        assert np.all(np.diff(out[:, :, channel].ravel()[order].astype(int)) >= 0)


def test_baseline_family_honours_alpha_weights_and_luminance(
    astronaut: np.ndarray, stripes: np.ndarray, checker: np.ndarray
) -> None:
    baseline = HistogramBaseline()
    assert np.array_equal(
        baseline.stylize(astronaut, [stripes], [1.0], StylizeControls(alpha=0.0)), astronaut
    )
    assert np.array_equal(
        baseline.stylize(astronaut, [stripes, checker], [2.0, 0.0], FULL),
        histogram_baseline(astronaut, stripes),
    )
    kept = baseline.stylize(astronaut, [stripes], [1.0], StylizeControls(luminance_only=True))
    chroma = (
        rgb_to_ycbcr(to_float32(kept))[:, :, 1:] - rgb_to_ycbcr(to_float32(astronaut))[:, :, 1:]
    )
    assert float(np.abs(chroma).mean()) < 0.01
    with pytest.raises(InvalidArgument):
        baseline.stylize(astronaut, [stripes], [1.0, 1.0], FULL)


def _fast_models() -> list[ModelSpec]:
    """One model per family, the fastest: gatys v1 (200 steps) is covered by its fast twin."""
    chosen: dict[str, ModelSpec] = {}
    for spec in registry.all_models():
        if spec.name == "gatys.lite0-v1":
            continue
        if all(w.path().is_file() for w in spec.weights.values()):
            chosen.setdefault(spec.family, spec)
    return list(chosen.values())


FAMILIES = _fast_models()


@pytest.fixture(scope="module")
def families() -> dict[str, StyleFamily]:
    return {spec.name: registry.build_family(spec.name) for spec in FAMILIES}


def _styles_for(
    family: StyleFamily, generated: list[RGBImage]
) -> tuple[list[RGBImage], list[str] | None]:
    """Two styles the family can paint, and their keys: feedforward's trained ones.

    Feedforward's are read from the corpus and sent with their catalog keys, as the
    tiler does (a 96 px copy is too small to be recognised by its statistics alone).
    """
    if not isinstance(family, FeedforwardFamily):
        return generated, None
    if not DATA.is_dir():
        pytest.skip(f"feedforward paints only its trained styles, read from {DATA}: absent")
    trained = family.trained_styles[:2]
    images = [
        downscale(np.asarray(Image.open(DATA / "styles" / s.file).convert("RGB")), SIDE)
        for s in trained
    ]
    return images, [s.sha256 for s in trained]


@pytest.mark.parametrize("spec", FAMILIES, ids=lambda spec: spec.name)
def test_stylized_output_is_closer_to_the_style_than_the_content_is(
    spec: ModelSpec,
    families: dict[str, StyleFamily],
    meter: QualityMeter,
    astronaut: np.ndarray,
    stripes: np.ndarray,
    checker: np.ndarray,
) -> None:
    family = families[spec.name]
    styles, keys = _styles_for(family, [stripes, checker])
    style = styles[0]
    out = family.stylize(
        astronaut, [style], [1.0], FULL, style_keys=None if keys is None else keys[:1]
    )
    assert meter.style_distance(out, style) < meter.style_distance(astronaut, style)


@pytest.mark.parametrize("spec", FAMILIES, ids=lambda spec: spec.name)
def test_moving_the_weight_from_a_to_b_moves_the_style_distance_monotonically(
    spec: ModelSpec,
    families: dict[str, StyleFamily],
    meter: QualityMeter,
    chelsea: np.ndarray,
    stripes: np.ndarray,
    checker: np.ndarray,
) -> None:
    family = families[spec.name]
    (style_a, style_b), keys = _styles_for(family, [stripes, checker])
    outputs = [
        family.stylize(chelsea, [style_a, style_b], [1.0 - w, w], FULL, style_keys=keys)
        for w in (0.2, 0.5, 0.8)
    ]
    to_b = [meter.style_distance(out, style_b) for out in outputs]
    to_a = [meter.style_distance(out, style_a) for out in outputs]
    assert to_b[0] > to_b[1] > to_b[2]
    assert to_a[0] < to_a[1] < to_a[2]
