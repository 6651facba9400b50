"""blend_and_encode: a one-tile job skips blending and gives the very bytes blending gives."""

from __future__ import annotations

import numpy as np

from gouache.imaging import codec
from gouache.imaging.tiling import blend_tiles
from services.tiling.domain import plan_image
from services.tiling.domain.steps import blend_and_encode


def _pixels(height: int, width: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_one_tile_encodes_the_output_as_blending_would() -> None:
    plan = plan_image(200, 120, 256, 32)
    assert len(plan.tiles) == 1
    output = _pixels(120, 200, 1)
    blended = blend_tiles(list(plan.tiles), [output], 200, 120, plan.overlap)
    expected = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    assert np.array_equal(expected, output)
    data = blend_and_encode(plan, [output], 200, 120, "png", 90)
    assert data == codec.encode(expected, "png")


def test_several_tiles_are_still_blended() -> None:
    plan = plan_image(300, 100, 128, 32)
    assert len(plan.tiles) > 1
    outputs = [_pixels(tile.height, tile.width, i) for i, tile in enumerate(plan.tiles)]
    data = blend_and_encode(plan, outputs, 300, 100, "png", 90)
    blended = blend_tiles(list(plan.tiles), outputs, 300, 100, plan.overlap)
    expected = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    decoded = codec.validate_and_decode(data)
    assert np.array_equal(decoded.pixels, expected)


def test_a_float_output_is_blended_not_passed_through() -> None:
    plan = plan_image(64, 64, 128, 16)
    output = _pixels(64, 64, 3).astype(np.float32) + 0.4
    data = blend_and_encode(plan, [output], 64, 64, "png", 90)  # type: ignore[list-item]
    decoded = codec.validate_and_decode(data)
    assert np.array_equal(decoded.pixels, np.clip(np.rint(output), 0, 255).astype(np.uint8))
