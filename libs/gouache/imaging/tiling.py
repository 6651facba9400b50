"""Cut large images into overlapping tiles and blend stylized tiles back without seams."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

MIN_TILE_SIZE = 64

_ScalarT = TypeVar("_ScalarT", bound=np.generic)


@dataclass(frozen=True)
class Tile:
    """A rectangle of the image in pixels: top-left corner (x, y) and its size."""

    x: int
    y: int
    width: int
    height: int


def plan_tiles(width: int, height: int, tile_size: int, overlap: int) -> list[Tile]:
    """Plans a deterministic grid of tiles that covers the image exactly.

    An image that fits in one tile gets one tile. Otherwise, along each axis that is
    longer than `tile_size`, the fewest full-size tiles that overlap by at least
    `overlap` are spread evenly from one border to the other: the first tile starts at
    0, the last ends at the far border, and the spare pixels are shared out among all
    the overlaps instead of piling up at the last one. Every tile is then `tile_size`
    on that axis, which keeps inference batches uniform. Tiles are listed row by row.
    """
    _validate_plan(width, height, tile_size, overlap)
    xs = _axis_starts(width, tile_size, overlap)
    ys = _axis_starts(height, tile_size, overlap)
    tile_width = min(width, tile_size)
    tile_height = min(height, tile_size)
    return [Tile(x=x, y=y, width=tile_width, height=tile_height) for y in ys for x in xs]


def extract_tile(pixels: NDArray[_ScalarT], tile: Tile) -> NDArray[_ScalarT]:
    """Returns the tile's region of an (H, W, ...) array as a view, without copying."""
    height, width = pixels.shape[:2]
    _require_inside(tile, width, height)
    return pixels[tile.y : tile.y + tile.height, tile.x : tile.x + tile.width]


def blend_weights(tile: Tile, width: int, height: int, overlap: int) -> NDArray[np.float32]:
    """Weights (tile height, tile width) for blending one tile into the image.

    On each side that borders another tile (any side not on the image border) the
    weight rises from near 0 to 1 over `overlap` pixels along a raised cosine; on image
    borders it stays 1. Two such ramps facing each other across an overlap of exactly
    `overlap` pixels sum to 1, and their smooth shape leaves no visible step where one
    tile's style statistics hand over to the next. No weight is 0, so every covered
    pixel has a defined blend.
    """
    _require_inside(tile, width, height)
    if overlap < 0:
        raise ValueError(f"overlap must be >= 0, got {overlap}")
    along_x = _ramp_profile(tile.width, overlap, tile.x > 0, tile.x + tile.width < width)
    along_y = _ramp_profile(tile.height, overlap, tile.y > 0, tile.y + tile.height < height)
    return np.outer(along_y, along_x).astype(np.float32)


def blend_tiles(
    tiles: Sequence[Tile],
    outputs: Sequence[NDArray[np.generic]],
    width: int,
    height: int,
    overlap: int,
) -> NDArray[np.float32]:
    """Blends per-tile outputs into one (height, width, 3) float32 image.

    Each output is weighted by `blend_weights` and the sum is divided by the summed
    weights, so the result is a weighted average whether or not the weights form a
    partition of unity. Blending is linear: outputs in [0, 1] give a result in [0, 1],
    uint8 outputs give float32 values on the 0-255 scale. Tiles are accumulated in list
    order, so the same inputs always give the same bits.
    """
    if len(tiles) != len(outputs):
        raise ValueError(f"got {len(tiles)} tiles but {len(outputs)} outputs")
    if not tiles:
        raise ValueError("nothing to blend: the tile list is empty")
    accumulated = np.zeros((height, width, 3), dtype=np.float32)
    weight_sum = np.zeros((height, width), dtype=np.float32)
    for tile, output in zip(tiles, outputs, strict=True):
        _require_output_shape(tile, output)
        weights = blend_weights(tile, width, height, overlap)
        rows = slice(tile.y, tile.y + tile.height)
        cols = slice(tile.x, tile.x + tile.width)
        accumulated[rows, cols] += weights[:, :, np.newaxis] * output.astype(np.float32)
        weight_sum[rows, cols] += weights
    if not np.all(weight_sum > 0):
        missing = int(np.count_nonzero(weight_sum <= 0))
        raise ValueError(
            f"the tiles leave {missing} pixels of the {width}x{height} image uncovered"
        )
    accumulated /= weight_sum[:, :, np.newaxis]
    return accumulated


def _validate_plan(width: int, height: int, tile_size: int, overlap: int) -> None:
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if tile_size < MIN_TILE_SIZE:
        raise ValueError(
            f"tile_size must be at least {MIN_TILE_SIZE} pixels, got {tile_size}; "
            "smaller tiles carry too little context for style transfer"
        )
    if not 0 <= overlap < tile_size / 2:
        raise ValueError(
            f"overlap must be at least 0 and less than half the tile size "
            f"({tile_size / 2:g}), got {overlap}"
        )


def _axis_starts(length: int, tile_size: int, overlap: int) -> list[int]:
    """Start offsets of the fewest full-size tiles covering `length`, evenly spread."""
    if length <= tile_size:
        return [0]
    stride = tile_size - overlap
    gaps = math.ceil((length - tile_size) / stride)
    # Integer spacing differs by at most one pixel between neighbours, and never exceeds
    # `stride`, so every overlap is at least `overlap`.
    return [(i * (length - tile_size)) // gaps for i in range(gaps + 1)]


def _ramp_profile(size: int, overlap: int, ramp_start: bool, ramp_end: bool) -> NDArray[np.float64]:
    """1-D weights: raised-cosine ramps of `overlap` pixels at the requested ends."""
    profile = np.ones(size, dtype=np.float64)
    length = min(overlap, size // 2)
    if length == 0:
        return profile
    # Sampling at pixel centres keeps every weight above 0 and makes facing ramps sum to 1.
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(length) + 0.5) / length)
    if ramp_start:
        profile[:length] = ramp
    if ramp_end:
        profile[size - length :] = ramp[::-1]
    return profile


def _require_inside(tile: Tile, width: int, height: int) -> None:
    inside = (
        tile.x >= 0
        and tile.y >= 0
        and tile.width > 0
        and tile.height > 0
        and tile.x + tile.width <= width
        and tile.y + tile.height <= height
    )
    if not inside:
        raise ValueError(f"{tile} does not lie inside the {width}x{height} image")


def _require_output_shape(tile: Tile, output: NDArray[np.generic]) -> None:
    expected = (tile.height, tile.width, 3)
    if output.shape != expected:
        raise ValueError(f"output for {tile} has shape {output.shape}, expected {expected}")
