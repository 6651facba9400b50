"""Gatys family: strength, determinism, sizes, colour controls, style mixing and caching."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from gouache.imaging.color import rgb_to_ycbcr, to_float32
from gouache.nst.base import StylizeControls
from gouache.nst.encoders import Lite0Encoder
from gouache.nst.families.gatys import GatysConfig, GatysFamily
from gouache.nst.losses import tv_loss
from gouache.nst.registry import get
from gouache.runtime.errors import InvalidArgument
from tests.unit.nst.metrics import style_distance

FULL = StylizeControls()


@pytest.fixture(scope="module")
def fast_config() -> GatysConfig:
    return GatysConfig.from_mapping(get("gatys.lite0-fast").config)


@pytest.fixture(scope="module")
def family(fast_config: GatysConfig, encoder: Lite0Encoder) -> GatysFamily:
    return GatysFamily(fast_config, encoder)


def test_alpha_zero_returns_the_content(
    family: GatysFamily, astronaut: np.ndarray, stripes: np.ndarray
) -> None:
    out = family.stylize(astronaut, [stripes], [1.0], StylizeControls(alpha=0.0))
    assert np.abs(out.astype(int) - astronaut.astype(int)).max() <= 1


def test_same_seed_gives_identical_bytes(
    family: GatysFamily, chelsea: np.ndarray, stripes: np.ndarray
) -> None:
    controls = StylizeControls(seed=7)
    first = family.stylize(chelsea, [stripes], [1.0], controls)
    second = family.stylize(chelsea, [stripes], [1.0], controls)
    assert first.tobytes() == second.tobytes()


def test_the_seed_drives_the_texture(
    family: GatysFamily, chelsea: np.ndarray, stripes: np.ndarray
) -> None:
    first = family.stylize(chelsea, [stripes], [1.0], StylizeControls(seed=1))
    second = family.stylize(chelsea, [stripes], [1.0], StylizeControls(seed=2))
    assert first.tobytes() != second.tobytes()


@pytest.mark.parametrize(("height", "width"), [(67, 45), (33, 71), (1, 5)])
def test_output_has_the_content_shape(
    family: GatysFamily, astronaut: np.ndarray, checker: np.ndarray, height: int, width: int
) -> None:
    content = np.ascontiguousarray(astronaut[:height, :width])
    out = family.stylize(content, [checker], [1.0], FULL)
    assert out.shape == content.shape
    assert out.dtype == np.uint8


def test_stylized_output_is_closer_to_the_style(
    family: GatysFamily, encoder: Lite0Encoder, astronaut: np.ndarray, stripes: np.ndarray
) -> None:
    out = family.stylize(astronaut, [stripes], [1.0], FULL)
    before = style_distance(encoder, astronaut, stripes)
    after = style_distance(encoder, out, stripes)
    assert after < 0.7 * before


def test_lower_alpha_is_less_stylized(
    family: GatysFamily, encoder: Lite0Encoder, astronaut: np.ndarray, stripes: np.ndarray
) -> None:
    half = family.stylize(astronaut, [stripes], [1.0], StylizeControls(alpha=0.5))
    full = family.stylize(astronaut, [stripes], [1.0], FULL)
    distances = [style_distance(encoder, image, stripes) for image in (astronaut, half, full)]
    assert distances[0] > distances[1] > distances[2]


def test_moving_weight_towards_a_style_brings_the_output_closer_to_it(
    family: GatysFamily,
    encoder: Lite0Encoder,
    chelsea: np.ndarray,
    stripes: np.ndarray,
    checker: np.ndarray,
) -> None:
    mostly_checker = family.stylize(chelsea, [stripes, checker], [0.15, 0.85], FULL)
    mostly_stripes = family.stylize(chelsea, [stripes, checker], [0.85, 0.15], FULL)
    assert style_distance(encoder, mostly_stripes, stripes) < style_distance(
        encoder, mostly_checker, stripes
    )
    assert style_distance(encoder, mostly_checker, checker) < style_distance(
        encoder, mostly_stripes, checker
    )


def test_luminance_only_keeps_the_content_chroma(
    family: GatysFamily, astronaut: np.ndarray, stripes: np.ndarray
) -> None:
    content_chroma = rgb_to_ycbcr(to_float32(astronaut))[:, :, 1:]

    def chroma_error(controls: StylizeControls) -> float:
        out = family.stylize(astronaut, [stripes], [1.0], controls)
        return float(np.abs(rgb_to_ycbcr(to_float32(out))[:, :, 1:] - content_chroma).mean())

    kept = chroma_error(StylizeControls(luminance_only=True))
    assert kept < 0.01
    assert kept < 0.25 * chroma_error(FULL)


def test_histogram_match_keeps_the_content_palette(
    family: GatysFamily, chelsea: np.ndarray, stripes: np.ndarray
) -> None:
    content_mean = to_float32(chelsea).mean(axis=(0, 1))

    def palette_error(controls: StylizeControls) -> float:
        out = family.stylize(chelsea, [stripes], [1.0], controls)
        return float(np.abs(to_float32(out).mean(axis=(0, 1)) - content_mean).sum())

    assert palette_error(StylizeControls(histogram_match=True)) < palette_error(FULL)


def test_higher_tv_weight_gives_a_smoother_image(
    family: GatysFamily, astronaut: np.ndarray, checker: np.ndarray
) -> None:
    def roughness(tv_weight: float) -> float:
        out = family.stylize(astronaut, [checker], [1.0], StylizeControls(tv_weight=tv_weight))
        return float(tv_loss(torch.from_numpy(to_float32(out)).permute(2, 0, 1)[None]))

    assert roughness(100.0) < roughness(0.0)


def test_style_keys_reuse_cached_style_statistics(
    fast_config: GatysConfig,
    encoder: Lite0Encoder,
    chelsea: np.ndarray,
    stripes: np.ndarray,
    checker: np.ndarray,
) -> None:
    # Few steps: what is under test is where the targets come from, not how good it looks.
    family = GatysFamily(dataclasses.replace(fast_config, steps=5), encoder)
    first = family.stylize(chelsea, [stripes], [1.0], FULL, style_keys=["style-a"])
    # Same key, different pixels: the cached statistics of the first call must be used.
    again = family.stylize(chelsea, [checker], [1.0], FULL, style_keys=["style-a"])
    fresh = family.stylize(chelsea, [checker], [1.0], FULL, style_keys=["style-b"])
    assert again.tobytes() == first.tobytes()
    assert fresh.tobytes() != first.tobytes()


def test_style_cache_is_bounded(
    encoder: Lite0Encoder, fast_config: GatysConfig, chelsea: np.ndarray, stripes: np.ndarray
) -> None:
    config = dataclasses.replace(fast_config, steps=1, style_cache_size=2)
    family = GatysFamily(config, encoder)
    for key in ("a", "b", "c"):
        family.stylize(chelsea, [stripes], [1.0], FULL, style_keys=[key])
    assert family.cached_styles() == 2


def test_large_contents_go_coarse_to_fine_and_keep_their_size(
    encoder: Lite0Encoder, fast_config: GatysConfig, astronaut: np.ndarray, stripes: np.ndarray
) -> None:
    config = dataclasses.replace(fast_config, coarse_to_fine_threshold=48, max_side=64)
    family = GatysFamily(config, encoder)
    out = family.stylize(astronaut[:, :77], [stripes], [1.0], FULL)
    assert out.shape == (80, 77, 3)
    assert style_distance(encoder, out, stripes) < style_distance(encoder, astronaut, stripes)


@pytest.mark.parametrize(
    ("content", "weights", "field"),
    [
        (np.zeros((8, 8, 3), np.float32), [1.0], "content"),
        (np.zeros((8, 8), np.uint8), [1.0], "content"),
        (np.zeros((8, 8, 3), np.uint8), [1.0, 1.0], "params.weights"),
        (np.zeros((8, 8, 3), np.uint8), [0.0], "params.weights"),
        (np.zeros((8, 8, 3), np.uint8), [-1.0], "params.weights"),
    ],
)
def test_bad_requests_are_invalid_arguments(
    family: GatysFamily,
    stripes: np.ndarray,
    content: np.ndarray,
    weights: list[float],
    field: str,
) -> None:
    with pytest.raises(InvalidArgument) as raised:
        family.stylize(content, [stripes], weights, FULL)
    assert raised.value.field == field


@pytest.mark.parametrize("alpha", [-0.1, 1.5])
def test_alpha_outside_zero_to_one_is_refused(alpha: float) -> None:
    with pytest.raises(InvalidArgument, match="alpha"):
        StylizeControls(alpha=alpha)
