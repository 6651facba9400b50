"""No block mosaic in flat regions at 2048 px (issue 9): adain as the mesh serves it.

The scene is generated: a 2048x1536 night-sky gradient over scikit-image's coffee photo,
with sensor-like noise, saved as a JPEG (quality 85, 4:2:0) as users upload photos.
Each model version is run the way the tiler runs it: tiles of the catalogue's
`tile_size` overlapping by 32 px, the style fitted to the tile size, outputs blended.

Threshold, from the measurement (loadtests/RESULTS.md, "Block grid at 2048 px"): on this
scene, styled with *The Starry Night*, the content's own JPEG grid scores a
`grid_excess` of 0.39 at 8 px; v1 in 512 px tiles 335x that, v1 on the whole image at
2048 px 39x, and v1.1 (whole image, network at 1024 px) 3.4x. An output may carry at
most 8x the content's grid: above v1.1, far below both failures. The test uses
scikit-image's immunohistochemistry as the style so it runs without the corpus.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from gouache.catalogue import shipped
from gouache.imaging.tiling import blend_tiles, extract_tile, plan_tiles
from gouache.nst.artifacts import grid_excess
from gouache.nst.base import StylizeControls
from gouache.nst.onnx_runtime import build_family
from tests.unit.nst.images import downscale, sample

pytestmark = pytest.mark.slow

GRID_LIMIT = 8.0
"""How many times the content's own grid excess an output may carry (module docstring)."""

_PERIOD = 8
_OVERLAP = 32
_WIDTH, _HEIGHT = 2048, 1536
_SKY = (slice(32, _HEIGHT // 2 - 32), slice(32, _WIDTH - 32))


def _night_scene() -> np.ndarray:
    rng = np.random.default_rng(0)
    fraction = np.linspace(0.0, 1.0, _HEIGHT)[:, None, None]
    top, bottom = np.array([10.0, 20.0, 60.0]), np.array([70.0, 110.0, 170.0])
    scene = (top * (1.0 - fraction) + bottom * fraction) * np.ones((1, _WIDTH, 1))
    ground = Image.fromarray(sample("coffee")).resize(
        (_WIDTH, _HEIGHT // 2), Image.Resampling.BICUBIC
    )
    scene[_HEIGHT // 2 :] = np.asarray(ground, dtype=np.float64)
    scene += rng.normal(0.0, 1.0, scene.shape)
    encoded = io.BytesIO()
    Image.fromarray(np.clip(scene, 0, 255).round().astype(np.uint8)).save(
        encoded, format="JPEG", quality=85
    )
    return np.asarray(Image.open(encoded).convert("RGB"))


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    return _night_scene()


def _as_the_mesh_serves(version: str, content: np.ndarray, style: np.ndarray) -> np.ndarray:
    tile_size = next(e.tile_size for e in shipped.ENTRIES if e.name == version)
    family = build_family(version, device="cpu", runtime="torch")
    tiles = plan_tiles(_WIDTH, _HEIGHT, tile_size, _OVERLAP)
    fitted = downscale(style, min(tile_size, max(style.shape[:2])))
    outputs = [
        family.stylize(
            np.ascontiguousarray(extract_tile(content, tile)),
            [fitted],
            [1.0],
            StylizeControls(),
            style_keys=["style"],
        )
        for tile in tiles
    ]
    return blend_tiles(tiles, outputs, _WIDTH, _HEIGHT, _OVERLAP)


@pytest.mark.parametrize(
    ("version", "smooth"), [("adain.lite0-v1.1", True), ("adain.lite0-v1", False)]
)
def test_flat_sky_carries_no_block_grid_at_2048_px(
    scene: np.ndarray, version: str, smooth: bool
) -> None:
    """v1.1 keeps the sky's grid within the limit; v1, today's, breaks it (the metric bites)."""
    reference = grid_excess(scene[_SKY], _PERIOD)
    assert reference > 0.0, "the JPEG scene should carry a faint 8 px block grid"
    output = _as_the_mesh_serves(version, scene, sample("immunohistochemistry"))
    measured = grid_excess(output[_SKY], _PERIOD)
    assert (measured <= GRID_LIMIT * reference) is smooth, (
        f"{version}: grid excess {measured:.2f} vs the content's {reference:.2f} "
        f"(limit {GRID_LIMIT}x)"
    )


def test_grid_excess_finds_a_mosaic_and_ignores_smooth_gradients() -> None:
    ramp = np.linspace(0.0, 255.0, 256)[None, :, None] * np.ones((256, 1, 3))
    assert abs(grid_excess(ramp, 8)) < 1e-9
    blocks = np.kron(np.random.default_rng(1).uniform(0, 255, (32, 32)), np.ones((8, 8)))
    mosaic = np.stack([blocks] * 3, axis=2)
    assert grid_excess(mosaic, 8) > 1000.0
    assert grid_excess(mosaic, 7) < grid_excess(mosaic, 8) / 10
