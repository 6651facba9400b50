"""Colour transforms behind the colour-preservation controls: YCbCr, luminance transfer, histograms.

Convention: every function here takes and returns float32 RGB arrays of shape
(height, width, 3) with values in [0, 1]. Integer pixels are refused rather than
guessed at (a uint8 image silently treated as [0, 1] would be 255 times too bright);
convert with `to_float32` and back with `to_uint8`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from PIL import Image

# BT.601 full range (the JPEG/JFIF matrix): Y in [0, 1], Cb and Cr centred on 0.5.
_RGB_TO_YCBCR = np.array(
    [
        [0.299, 0.587, 0.114],
        [-0.168735892, -0.331264108, 0.5],
        [0.5, -0.418687589, -0.081312411],
    ],
    dtype=np.float64,
)
# Inverted in float64 and only then rounded, so the float32 round trip stays within 1e-6.
_YCBCR_TO_RGB = np.linalg.inv(_RGB_TO_YCBCR)
_FORWARD: NDArray[np.float32] = _RGB_TO_YCBCR.T.astype(np.float32)
_INVERSE: NDArray[np.float32] = _YCBCR_TO_RGB.T.astype(np.float32)
_CHROMA_OFFSET: NDArray[np.float32] = np.array([0.0, 0.5, 0.5], dtype=np.float32)


def to_float32(pixels: NDArray[np.uint8]) -> NDArray[np.float32]:
    """Maps uint8 RGB pixels to float32 in [0, 1], the convention of this module."""
    if pixels.dtype != np.uint8:
        raise TypeError(f"expected uint8 pixels, got {pixels.dtype}")
    _require_rgb_shape(pixels)
    return pixels.astype(np.float32) / np.float32(255.0)


def to_uint8(image: NDArray[np.floating]) -> NDArray[np.uint8]:
    """Maps float RGB in [0, 1] to uint8, clipping out-of-range values and rounding."""
    values = _as_float_rgb(image)
    rounded: NDArray[np.uint8] = np.rint(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8)
    return rounded


def rgb_to_ycbcr(image: NDArray[np.floating]) -> NDArray[np.float32]:
    """Converts RGB to BT.601 full-range YCbCr, all three channels in [0, 1]."""
    rgb = _as_float_rgb(image)
    ycbcr: NDArray[np.float32] = rgb @ _FORWARD + _CHROMA_OFFSET
    return ycbcr


def ycbcr_to_rgb(image: NDArray[np.floating]) -> NDArray[np.float32]:
    """Converts BT.601 full-range YCbCr back to RGB; the exact inverse of `rgb_to_ycbcr`.

    The result is not clipped, so a round trip is lossless; YCbCr built from mixed
    sources (see `luminance_transfer`) can leave [0, 1] and is clipped there.
    """
    ycbcr = _as_float_rgb(image)
    centred: NDArray[np.float32] = ycbcr - _CHROMA_OFFSET
    rgb: NDArray[np.float32] = centred @ _INVERSE
    return rgb


def luminance_transfer(
    stylized: NDArray[np.floating], content: NDArray[np.floating]
) -> NDArray[np.float32]:
    """Keeps the stylized image's luminance and the content image's chroma.

    This is the "luminance_only" colour control: brush strokes and texture come from
    the style, colours stay those of the photo. The content is resized to the stylized
    image's size when they differ. The result is clipped to [0, 1].
    """
    stylized_ycbcr = rgb_to_ycbcr(stylized)
    content_ycbcr = rgb_to_ycbcr(content)
    height, width = stylized_ycbcr.shape[:2]
    chroma = _resize_channels(content_ycbcr[:, :, 1:], width, height)
    combined = np.concatenate([stylized_ycbcr[:, :, :1], chroma], axis=2)
    return np.clip(ycbcr_to_rgb(combined), 0.0, 1.0)


def match_histogram(
    source: NDArray[np.floating], reference: NDArray[np.floating]
) -> NDArray[np.float32]:
    """Recolours `source` so each RGB channel has the distribution of `reference`'s.

    This is the "histogram_match" colour control, called with the style image as
    `source` and the content image as `reference`, so the style takes the photo's
    colours before stylization. Matching is exact CDF matching per channel, so the two
    images may differ in size; the order of values within a channel is preserved.
    """
    src = _as_float_rgb(source)
    ref = _as_float_rgb(reference)
    channels = [_match_channel(src[:, :, c], ref[:, :, c]) for c in range(3)]
    return np.stack(channels, axis=2)


def _match_channel(
    source: NDArray[np.float32], reference: NDArray[np.float32]
) -> NDArray[np.float32]:
    """Maps each source value to the reference value at the same cumulative frequency."""
    _, src_index, src_counts = np.unique(source.ravel(), return_inverse=True, return_counts=True)
    ref_values, ref_counts = np.unique(reference.ravel(), return_counts=True)
    src_quantiles = np.cumsum(src_counts) / source.size
    ref_quantiles = np.cumsum(ref_counts) / reference.size
    mapped = np.interp(src_quantiles, ref_quantiles, ref_values).astype(np.float32)
    return mapped[src_index].reshape(source.shape)


def _resize_channels(channels: NDArray[np.float32], width: int, height: int) -> NDArray[np.float32]:
    """Resizes float channels with Pillow's bilinear filter, which does not overshoot."""
    if channels.shape[:2] == (height, width):
        return channels
    resized = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(channels[:, :, c])).resize(
                (width, height), Image.Resampling.BILINEAR
            ),
            dtype=np.float32,
        )
        for c in range(channels.shape[2])
    ]
    return np.stack(resized, axis=2)


def _as_float_rgb(image: NDArray[np.floating]) -> NDArray[np.float32]:
    if not np.issubdtype(image.dtype, np.floating):
        raise TypeError(
            f"expected float RGB in [0, 1], got {image.dtype}; convert uint8 with to_float32"
        )
    _require_rgb_shape(image)
    return image.astype(np.float32, copy=False)


def _require_rgb_shape(image: NDArray[np.generic]) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"expected an RGB array of shape (height, width, 3), got {image.shape}")
