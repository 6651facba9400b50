"""Tests for the colour transforms behind luminance-only and histogram-matching controls."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image

from gouache.imaging.color import (
    luminance_transfer,
    match_histogram,
    rgb_to_ycbcr,
    to_float32,
    to_uint8,
    ycbcr_to_rgb,
)
from tests.unit.imaging.samples import sample


@pytest.fixture(scope="module")
def astronaut_rgb(astronaut: NDArray[np.uint8]) -> NDArray[np.float32]:
    return to_float32(astronaut)


@pytest.fixture(scope="module")
def coffee_rgb(coffee: NDArray[np.uint8]) -> NDArray[np.float32]:
    return to_float32(coffee)


@pytest.fixture(scope="module")
def chelsea_rgb(chelsea: NDArray[np.uint8]) -> NDArray[np.float32]:
    return to_float32(chelsea)


def resized(image: NDArray[np.float32], width: int, height: int) -> NDArray[np.float32]:
    pil = Image.fromarray(to_uint8(image)).resize((width, height), Image.Resampling.LANCZOS)
    return to_float32(np.asarray(pil))


class TestYCbCr:
    def test_round_trip_is_exact(self, astronaut_rgb: NDArray[np.float32]) -> None:
        noise = np.random.default_rng(0).random((64, 64, 3), dtype=np.float32)
        for image in (astronaut_rgb, noise):
            back = ycbcr_to_rgb(rgb_to_ycbcr(image))
            assert back.dtype == np.float32
            np.testing.assert_allclose(back, image, atol=1e-5)

    @pytest.mark.parametrize(
        ("rgb", "ycbcr"),
        [
            ((0.0, 0.0, 0.0), (0.0, 0.5, 0.5)),
            ((1.0, 1.0, 1.0), (1.0, 0.5, 0.5)),
            ((1.0, 0.0, 0.0), (0.299, 0.5 - 0.168736, 1.0)),
            ((0.0, 0.0, 1.0), (0.114, 1.0, 0.5 - 0.081312)),
        ],
    )
    def test_bt601_full_range_reference_values(
        self, rgb: tuple[float, float, float], ycbcr: tuple[float, float, float]
    ) -> None:
        pixel = np.array(rgb, np.float32).reshape(1, 1, 3)
        np.testing.assert_allclose(rgb_to_ycbcr(pixel)[0, 0], ycbcr, atol=1e-5)

    def test_agrees_with_pillows_jpeg_conversion(self) -> None:
        pixels = sample("astronaut")
        expected = np.asarray(Image.fromarray(pixels).convert("YCbCr")).astype(np.float32)
        ours = rgb_to_ycbcr(to_float32(pixels)) * 255
        assert np.abs(ours - expected).max() <= 1.01

    def test_integer_pixels_are_refused(self) -> None:
        with pytest.raises(TypeError, match="to_float32"):
            rgb_to_ycbcr(np.zeros((4, 4, 3), np.uint8))

    def test_shape_is_checked(self) -> None:
        with pytest.raises(ValueError, match="height, width, 3"):
            rgb_to_ycbcr(np.zeros((4, 4), np.float32))


class TestLuminanceTransfer:
    def test_keeps_stylized_luma_and_content_chroma(
        self, astronaut_rgb: NDArray[np.float32], coffee_rgb: NDArray[np.float32]
    ) -> None:
        stylized = resized(coffee_rgb, 512, 512)
        result = luminance_transfer(stylized, astronaut_rgb)
        got, content, style = (rgb_to_ycbcr(x) for x in (result, astronaut_rgb, stylized))
        chroma_error = np.abs(got[..., 1:] - content[..., 1:])
        luma_error = np.abs(got[..., 0] - style[..., 0])
        # Exact except where the mixed colour falls outside RGB and is clipped.
        assert np.median(chroma_error) < 1e-5
        assert chroma_error.mean() < 0.01
        assert np.median(luma_error) < 1e-5
        assert luma_error.mean() < 0.01
        assert result.min() >= 0.0
        assert result.max() <= 1.0

    def test_content_of_another_size_is_resized(
        self, astronaut_rgb: NDArray[np.float32], chelsea_rgb: NDArray[np.float32]
    ) -> None:
        stylized = resized(astronaut_rgb, 300, 200)
        result = luminance_transfer(stylized, chelsea_rgb)
        assert result.shape == (200, 300, 3)
        expected_chroma = rgb_to_ycbcr(resized(chelsea_rgb, 300, 200))[..., 1:]
        assert np.abs(rgb_to_ycbcr(result)[..., 1:] - expected_chroma).mean() < 0.01

    def test_same_image_is_unchanged(self, chelsea_rgb: NDArray[np.float32]) -> None:
        np.testing.assert_allclose(
            luminance_transfer(chelsea_rgb, chelsea_rgb), chelsea_rgb, atol=1e-5
        )


class TestMatchHistogram:
    def test_source_takes_reference_statistics(
        self, chelsea_rgb: NDArray[np.float32], astronaut_rgb: NDArray[np.float32]
    ) -> None:
        result = match_histogram(chelsea_rgb, astronaut_rgb)
        assert result.shape == chelsea_rgb.shape
        assert result.dtype == np.float32
        before = np.abs(chelsea_rgb.mean(axis=(0, 1)) - astronaut_rgb.mean(axis=(0, 1)))
        after = np.abs(result.mean(axis=(0, 1)) - astronaut_rgb.mean(axis=(0, 1)))
        assert before.max() > 0.03
        assert after.max() < 0.005
        np.testing.assert_allclose(
            result.std(axis=(0, 1)), astronaut_rgb.std(axis=(0, 1)), atol=0.005
        )

    def test_order_of_values_is_preserved(
        self, coffee_rgb: NDArray[np.float32], astronaut_rgb: NDArray[np.float32]
    ) -> None:
        result = match_histogram(coffee_rgb, astronaut_rgb)
        for channel in range(3):
            order = np.argsort(coffee_rgb[..., channel].ravel(), kind="stable")
            assert np.all(np.diff(result[..., channel].ravel()[order]) >= 0)

    def test_matching_an_image_to_itself_is_identity(
        self, chelsea_rgb: NDArray[np.float32]
    ) -> None:
        np.testing.assert_allclose(
            match_histogram(chelsea_rgb, chelsea_rgb), chelsea_rgb, atol=1e-6
        )

    def test_result_stays_in_range(
        self, chelsea_rgb: NDArray[np.float32], coffee_rgb: NDArray[np.float32]
    ) -> None:
        result = match_histogram(chelsea_rgb, coffee_rgb)
        assert result.min() >= coffee_rgb.min()
        assert result.max() <= coffee_rgb.max()


def test_uint8_float_round_trip() -> None:
    pixels = sample("coffee")
    np.testing.assert_array_equal(to_uint8(to_float32(pixels)), pixels)


def test_to_uint8_clips() -> None:
    values = np.array([[[-0.5, 0.5, 1.5]]], np.float32)
    np.testing.assert_array_equal(to_uint8(values), [[[0, 128, 255]]])
