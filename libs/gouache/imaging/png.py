"""A fast PNG writer for 8-bit RGB: PNG's Average row filter in numpy, deflate by ISA-L.

Every result of every job is a PNG written here, so its cost is paid per job by the
tiling service. Pillow at zlib level 1 with run-length matches took 15.5 ms for a 512 px
adain result on the 2-core VM; this writer takes about 2.3 ms for about 6 % more bytes
(measured on scikit-image's astronaut at 512 px: 14.7 vs 2.3 ms, 422 vs 450 KiB; with
noise added, 17.8 vs 2.1 ms and 517 vs 524 KiB; loadtests/RESULTS.md):

- The Average filter (type 3) predicts each byte from the mean of its left and upper
  neighbours in the *original* image, so every row is filtered at once with array
  arithmetic; Paeth compresses 1-2 % better but its branchy predictor costs 10 ms in
  numpy. One filter type for the whole image, as PNG allows.
- ISA-L's deflate (the `isal` wheel, level 1) is 4-5x faster than zlib's level 1 with
  about the same ratio on filtered photographs.

The output is a plain, standard PNG (IHDR, one IDAT, IEND; no metadata), so the same
pixels always give the same bytes.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
from isal import isal_zlib
from numpy.typing import NDArray

SIGNATURE = b"\x89PNG\r\n\x1a\n"
# ISA-L's levels run 0-3; 1 is its fast default, 3 gains under 1 % on results.
DEFLATE_LEVEL = 1
_AVERAGE_FILTER = 3
_COLOUR_TYPE_RGB = 2
_BIT_DEPTH = 8


def encode_rgb(pixels: NDArray[np.uint8]) -> bytes:
    """Encodes (height, width, 3) uint8 RGB pixels as a PNG."""
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
        raise ValueError(
            f"expected uint8 pixels of shape (h, w, 3), got {pixels.dtype} {pixels.shape}"
        )
    height, width = int(pixels.shape[0]), int(pixels.shape[1])
    if height == 0 or width == 0:
        raise ValueError("cannot encode an empty image")
    header = struct.pack(">IIBBBBB", width, height, _BIT_DEPTH, _COLOUR_TYPE_RGB, 0, 0, 0)
    data = isal_zlib.compress(average_filtered(pixels).tobytes(), DEFLATE_LEVEL)
    return SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def average_filtered(pixels: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """The scanlines PNG compresses: each row prefixed by filter type 3 (Average), each
    byte minus floor((left + up) / 2) modulo 256, with left and up the unfiltered bytes
    one pixel to the left and one row up (zero outside the image)."""
    height, width, channels = pixels.shape
    rows = np.ascontiguousarray(pixels).reshape(height, width * channels)
    left = np.zeros_like(rows)
    left[:, channels:] = rows[:, :-channels]
    up = np.zeros_like(rows)
    up[1:] = rows[:-1]
    # floor((left + up) / 2) in 8 bits: (left >> 1) + (up >> 1) + (left & up & 1).
    predictor = left >> 1
    predictor += up >> 1
    left &= up
    left &= 1
    predictor += left
    out = np.empty((height, width * channels + 1), dtype=np.uint8)
    out[:, 0] = _AVERAGE_FILTER
    np.subtract(rows, predictor, out=out[:, 1:])
    return out


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(data, zlib.crc32(kind)) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)
