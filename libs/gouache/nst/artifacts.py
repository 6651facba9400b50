"""Measures of structure an output should not have: a block grid and tile seams.

Both work on uint8 or float RGB arrays (H, W, 3) and the luma-free mean of the three
channels, in the image's own units, so an output and its content compare directly.

Grid excess. A block mosaic (a decoder's nearest-neighbour upsampling, JPEG's 8x8 and
16x16 blocks amplified by a network) concentrates gradient energy on the lines that
end each block: columns and rows x with x mod period == period - 1. `grid_excess` is
the mean squared neighbour difference on those lines minus the mean off them, averaged
over both axes; about 0 for an image without a grid at that period, the grid's
squared step height for a clean mosaic. Measured on the content it is the grid the
input already carries (a JPEG's blocks), the reference an output is judged against.

Seam ratio. `seam_ratio` compares the mean squared neighbour difference across given
tile boundaries (the pixel pairs straddling each boundary line) with the mean
everywhere else; 1 means a boundary is indistinguishable from the rest of the picture.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.generic]


def _gray(image: Image) -> npt.NDArray[np.float64]:
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {image.shape}")
    gray: npt.NDArray[np.float64] = image.astype(np.float64).mean(axis=2)
    return gray


def grid_excess(image: Image, period: int) -> float:
    """Gradient energy on the lines of a `period`-pixel grid in excess of elsewhere."""
    if period < 2:
        raise ValueError(f"period must be at least 2 pixels, got {period}")
    gray = _gray(image)
    if min(gray.shape) < 2 * period:
        raise ValueError(f"the image must span at least two periods, got {gray.shape}")
    across_columns = np.diff(gray, axis=1) ** 2
    across_rows = np.diff(gray, axis=0) ** 2
    on_columns = np.arange(across_columns.shape[1]) % period == period - 1
    on_rows = np.arange(across_rows.shape[0]) % period == period - 1
    columns = across_columns[:, on_columns].mean() - across_columns[:, ~on_columns].mean()
    rows = across_rows[on_rows].mean() - across_rows[~on_rows].mean()
    return float(0.5 * (columns + rows))


def seam_ratio(image: Image, columns: Sequence[int], rows: Sequence[int]) -> float:
    """Mean squared step across the boundaries over the mean step elsewhere.

    `columns` are x positions where a tile boundary falls between x - 1 and x; `rows`
    the same for y. Pixels within a band of 2 around a boundary are left out of
    "elsewhere" so a soft seam is not counted as the background.
    """
    gray = _gray(image)
    across_columns = np.diff(gray, axis=1) ** 2
    across_rows = np.diff(gray, axis=0) ** 2
    seam_columns = np.zeros(across_columns.shape[1], dtype=bool)
    seam_rows = np.zeros(across_rows.shape[0], dtype=bool)
    near_columns = np.zeros_like(seam_columns)
    near_rows = np.zeros_like(seam_rows)
    for x in columns:
        seam_columns[x - 1] = True
        near_columns[max(0, x - 3) : x + 2] = True
    for y in rows:
        seam_rows[y - 1] = True
        near_rows[max(0, y - 3) : y + 2] = True
    on = [across_columns[:, seam_columns].ravel(), across_rows[seam_rows].ravel()]
    off = [across_columns[:, ~near_columns].ravel(), across_rows[~near_rows].ravel()]
    seams = np.concatenate(on)
    if seams.size == 0:
        raise ValueError("no boundaries given")
    return float(seams.mean() / max(np.concatenate(off).mean(), 1e-12))
