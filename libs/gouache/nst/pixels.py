"""Image plumbing the families share: HWC float arrays <-> NCHW tensors, resizing, style keys."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import Tensor

from gouache.imaging.color import match_histogram, to_float32
from gouache.nst.base import RGBImage

FloatImage = npt.NDArray[np.float32]


def to_tensor(image: FloatImage, device: torch.device) -> Tensor:
    """HxWx3 float image -> contiguous 1x3xHxW tensor on `device`."""
    return (
        torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].contiguous().to(device)
    )


def to_numpy(image: Tensor) -> FloatImage:
    """1x3xHxW tensor -> contiguous HxWx3 float32 array on the CPU."""
    array: FloatImage = np.ascontiguousarray(image[0].permute(1, 2, 0).float().cpu().numpy())
    return array


def long_side(image: Tensor) -> int:
    return max(int(image.shape[-2]), int(image.shape[-1]))


def resize_long_side(image: Tensor, side: int) -> Tensor:
    """Resizes NCHW so its long side is `side`, keeping the aspect ratio (antialiased)."""
    height, width = int(image.shape[-2]), int(image.shape[-1])
    scale = side / max(height, width)
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    if size == (height, width):
        return image
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True)


def resize_to(image: Tensor, like: Tensor, *, antialias: bool = False) -> Tensor:
    """Resizes NCHW to `like`'s height and width (bilinear)."""
    if image.shape[-2:] == like.shape[-2:]:
        return image
    return F.interpolate(
        image, size=like.shape[-2:], mode="bilinear", align_corners=False, antialias=antialias
    )


def pad_to_stride(image: Tensor, stride: int) -> Tensor:
    """Pads bottom and right to a multiple of `stride`, and to at least two features.

    Mirrored (reflection) borders continue the picture without a seam; an image too
    small to mirror that far repeats its edge pixels instead. The result is channels-last.
    """
    height, width = int(image.shape[-2]), int(image.shape[-1])
    target_h = max(-(-height // stride) * stride, 2 * stride)
    target_w = max(-(-width // stride) * stride, 2 * stride)
    pad_h, pad_w = target_h - height, target_w - width
    if pad_h or pad_w:
        mode = "reflect" if pad_h < height and pad_w < width else "replicate"
        image = F.pad(image, (0, pad_w, 0, pad_h), mode=mode)
    return image.contiguous(memory_format=torch.channels_last)


def pixels_key(image: npt.NDArray[np.generic]) -> str:
    """sha256 over an array's shape, dtype and bytes: a cache key for an image's pixels."""
    digest = hashlib.sha256(str((image.shape, image.dtype.str)).encode())
    digest.update(np.ascontiguousarray(image).tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class KeyedStyle:
    """One style as float RGB, with the identity what is derived from it is cached under."""

    pixels: FloatImage
    key: tuple[str, str | None]


def prepare_styles(
    styles: Sequence[RGBImage],
    style_keys: Sequence[str] | None,
    histogram_reference: FloatImage | None,
) -> tuple[KeyedStyle, ...]:
    """Converts styles to float, recolours them to the content if asked, and keys them.

    Without a caller's key, a style is identified by a digest of its pixels. A
    histogram-matched style depends on the content it was matched to, so a digest of
    that content joins the key: reusing another image's recolouring would be wrong.
    """
    reference = None if histogram_reference is None else pixels_key(histogram_reference)
    prepared = []
    for index, style in enumerate(styles):
        pixels = to_float32(style)
        if histogram_reference is not None:
            pixels = match_histogram(source=pixels, reference=histogram_reference)
        identity = pixels_key(style) if style_keys is None else style_keys[index]
        prepared.append(KeyedStyle(pixels=pixels, key=(identity, reference)))
    return tuple(prepared)
