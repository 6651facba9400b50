"""The PNG writer every job's result goes through: lossless, standard, deterministic."""

from __future__ import annotations

import io
import zlib

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image

from gouache.imaging import png


def _decode(data: bytes) -> NDArray[np.uint8]:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        assert image.mode == "RGB"
        return np.asarray(image)


@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 9, 3), (9, 1, 3), (7, 5, 3), (67, 131, 3)])
def test_random_pixels_round_trip_through_pillow(shape: tuple[int, int, int]) -> None:
    pixels = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    np.testing.assert_array_equal(_decode(png.encode_rgb(pixels)), pixels)


def test_extreme_values_wrap_modulo_256() -> None:
    # The Average predictor of 255 next to 255 is 255; of 255 above 0, 127: every
    # difference must wrap the way decoders undo it.
    pixels = np.zeros((16, 16, 3), np.uint8)
    pixels[::2, ::3] = 255
    pixels[1::2, 1::2, 1] = 254
    np.testing.assert_array_equal(_decode(png.encode_rgb(pixels)), pixels)


def test_photograph_round_trips_and_is_deterministic(astronaut: NDArray[np.uint8]) -> None:
    first = png.encode_rgb(astronaut)
    np.testing.assert_array_equal(_decode(first), astronaut)
    assert png.encode_rgb(astronaut.copy()) == first


def test_non_contiguous_views_are_encoded_as_their_pixels(astronaut: NDArray[np.uint8]) -> None:
    view = astronaut[::3, 10:200:2]
    np.testing.assert_array_equal(_decode(png.encode_rgb(view)), view)


def test_filter_is_pngs_average_filter() -> None:
    pixels = np.random.default_rng(5).integers(0, 256, (6, 4, 3), dtype=np.uint8)
    filtered = png.average_filtered(pixels)
    wide = pixels.reshape(6, 12).astype(np.int64)
    for y in range(6):
        assert filtered[y, 0] == 3
        for x in range(12):
            left = wide[y, x - 3] if x >= 3 else 0
            up = wide[y - 1, x] if y >= 1 else 0
            assert filtered[y, 1 + x] == (wide[y, x] - (left + up) // 2) % 256


def test_chunks_are_well_formed(astronaut: NDArray[np.uint8]) -> None:
    data = png.encode_rgb(astronaut)
    assert data.startswith(png.SIGNATURE)
    offset, kinds = len(png.SIGNATURE), []
    while offset < len(data):
        length = int.from_bytes(data[offset : offset + 4], "big")
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        crc = int.from_bytes(data[offset + 8 + length : offset + 12 + length], "big")
        assert crc == zlib.crc32(kind + body)
        kinds.append(kind)
        offset += 12 + length
    assert kinds == [b"IHDR", b"IDAT", b"IEND"]


def test_compresses_a_photograph(astronaut: NDArray[np.uint8]) -> None:
    # Deflate after the filter keeps a photograph well under its raw size (0.57x measured).
    assert len(png.encode_rgb(astronaut)) < 0.7 * astronaut.nbytes


@pytest.mark.parametrize(
    "pixels",
    [
        np.zeros((4, 4), np.uint8),
        np.zeros((4, 4, 4), np.uint8),
        np.zeros((4, 4, 3), np.float32),
        np.zeros((0, 4, 3), np.uint8),
    ],
)
def test_refuses_what_is_not_rgb8(pixels: NDArray[np.generic]) -> None:
    with pytest.raises(ValueError, match=r"pixels|empty"):
        png.encode_rgb(pixels)  # type: ignore[arg-type]
