"""gatys.lite0-v2's coarse-to-fine schedule: v1 unchanged, v2 tiles refine without seams."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gouache.catalogue import shipped
from gouache.imaging.tiling import plan_tiles
from gouache.nst.artifacts import seam_ratio
from gouache.nst.base import StylizeControls
from gouache.nst.encoders import Lite0Encoder
from gouache.nst.families.gatys import GatysConfig, GatysFamily
from tests.unit.nst.images import resized, sample

SEAM_LIMIT = 1.5
"""Steps across refinement-tile boundaries may be at most this many times the mean step
elsewhere; measured 1.21 for v2 at 1024 px, 1.41 for v1 through the mesh's tiles
(loadtests/RESULTS.md)."""


def _tiny(**changes: object) -> GatysConfig:
    small = {"steps": 6, "refine_steps": 3, "max_side": 256, "style_cache_size": 4}
    return dataclasses.replace(GatysConfig(), **{**small, **changes})  # type: ignore[arg-type]


def test_v1_keeps_its_schedule_and_v2_is_pinned_apart() -> None:
    v1 = GatysConfig.from_mapping(shipped.GATYS_LITE0_V1)
    v2 = GatysConfig.from_mapping(shipped.GATYS_LITE0_V2)
    assert v1.coarse_side == 0
    assert (v2.coarse_side, v2.refine_steps, v2.refine_tile, v2.refine_overlap) == (
        512,
        30,
        512,
        64,
    )
    assert (
        dataclasses.replace(v2, coarse_side=0, refine_steps=100, max_side=1024, refine_tile=512)
        == v1
    )


def test_coarse_to_fine_refines_in_tiles_deterministically(
    encoder: Lite0Encoder, stripes: np.ndarray
) -> None:
    content = resized(sample("astronaut"), 160, 200)
    family = GatysFamily(_tiny(coarse_side=64, refine_tile=96, refine_overlap=16), encoder)
    first = family.stylize(content, [stripes], [1.0], StylizeControls(seed=3))
    again = family.stylize(content, [stripes], [1.0], StylizeControls(seed=3))
    assert first.shape == content.shape
    np.testing.assert_array_equal(first, again)
    assert np.abs(first.astype(int) - content.astype(int)).mean() > 2.0


def test_contents_within_the_coarse_side_are_painted_as_v1_paints_them(
    encoder: Lite0Encoder, stripes: np.ndarray
) -> None:
    content = resized(sample("chelsea"), 48, 64)
    v1 = GatysFamily(_tiny(), encoder)
    v2 = GatysFamily(_tiny(coarse_side=64), encoder)
    controls = StylizeControls(seed=1)
    np.testing.assert_array_equal(
        v1.stylize(content, [stripes], [1.0], controls),
        v2.stylize(content, [stripes], [1.0], controls),
    )


def test_seam_ratio_finds_a_step_between_tiles() -> None:
    texture = np.random.default_rng(0).uniform(0, 255, (128, 128, 3))
    assert seam_ratio(texture, [64], [64]) == pytest.approx(1.0, abs=0.15)
    stepped = texture.copy()
    stepped[:, 64:] = np.clip(stepped[:, 64:] + 120.0, 0, 255)
    assert seam_ratio(stepped, [64], []) > 2.0


@pytest.mark.slow
def test_v2_at_768_px_has_no_visible_seams_between_refinement_tiles(
    encoder: Lite0Encoder,
) -> None:
    """v2's real refinement (30 steps, 512 px tiles, 64 px overlap); 40 coarse steps."""
    config = dataclasses.replace(GatysConfig.from_mapping(shipped.GATYS_LITE0_V2), steps=40)
    content = resized(sample("astronaut"), 768, 768)
    style = sample("immunohistochemistry")
    out = GatysFamily(config, encoder).stylize(content, [style], [1.0], StylizeControls())
    tiles = plan_tiles(768, 768, config.refine_tile, config.refine_overlap)
    starts = sorted({t.x for t in tiles if t.x > 0})
    ends = sorted({t.x + t.width for t in tiles if t.x + t.width < 768})
    lines = [*starts, *ends]
    assert lines, "the content should be refined in more than one tile per axis"
    ratio = seam_ratio(out, lines, lines)
    assert ratio <= SEAM_LIMIT, f"steps across tile boundaries {ratio:.2f}x the rest"
