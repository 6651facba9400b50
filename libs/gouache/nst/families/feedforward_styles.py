"""How the feed-forward family recognises a request's style image as one of the styles it
was trained on: by the catalog file's sha256, the pixels' digest or Lite0 Gram statistics."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gouache.imaging.color import to_float32
from gouache.lru import LruCache
from gouache.nst.base import RGBImage
from gouache.nst.encoders.lite0 import Lite0Encoder
from gouache.nst.losses import gram
from gouache.nst.pixels import resize_long_side, to_tensor
from gouache.runtime.errors import InvalidArgument


@dataclass(frozen=True)
class TrainedStyle:
    """A curated style the model learnt: its CIN slot and how to recognise its image.

    `sha256` is the catalog file's (the bytes in /work/shared/data and in the storage
    catalog), `pixels_sha256` that of its decoded uint8 RGB pixels (see `pixels_digest`).
    """

    slot: int
    title: str
    file: str
    sha256: str
    pixels_sha256: str

    def to_json(self) -> dict[str, Any]:
        return {
            "slot": self.slot,
            "title": self.title,
            "file": self.file,
            "sha256": self.sha256,
            "pixels_sha256": self.pixels_sha256,
        }

    @classmethod
    def from_json(cls, values: Mapping[str, Any]) -> TrainedStyle:
        return cls(
            slot=int(values["slot"]),
            title=str(values["title"]),
            file=str(values["file"]),
            sha256=str(values["sha256"]),
            pixels_sha256=str(values["pixels_sha256"]),
        )


def pixels_digest(image: RGBImage) -> str:
    """sha256 over an image's shape and its uint8 RGB pixels, row-major."""
    digest = hashlib.sha256(f"{image.shape[0]}x{image.shape[1]}x3:".encode())
    digest.update(np.ascontiguousarray(image).tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class IdentifySettings:
    """How a style image is matched to a trained style by its Lite0 Gram statistics.

    The image is resized to long side `side` (antialiased bilinear); its Gram matrices at
    `taps` are compared with each trained style's by the mean relative Frobenius error;
    the nearest style is taken when that error is at most `max_distance`.
    """

    side: int = 256
    taps: tuple[str, ...] = ("b1", "b3", "b5")
    max_distance: float = 0.1

    def to_json(self) -> dict[str, Any]:
        return {"side": self.side, "taps": list(self.taps), "max_distance": self.max_distance}

    @classmethod
    def from_json(cls, values: Mapping[str, Any]) -> IdentifySettings:
        return cls(
            side=int(values["side"]),
            taps=tuple(str(t) for t in values["taps"]),
            max_distance=float(values["max_distance"]),
        )


def style_grams(
    encoder: Lite0Encoder, image: RGBImage, settings: IdentifySettings, device: torch.device
) -> dict[str, Tensor]:
    """The Gram matrices (C x C) that identify a style image, at `settings.side`."""
    tensor = resize_long_side(to_tensor(to_float32(image), device), settings.side)
    with torch.inference_mode():
        features = encoder.forward_features(tensor, settings.taps)
    return {tap: gram(features[tap])[0].float().cpu() for tap in settings.taps}


def gram_distance(ours: Mapping[str, Tensor], theirs: Mapping[str, Tensor]) -> float:
    """Mean over taps of ||G - G'|| / ||G'||: 0 for the same statistics."""
    errors = [
        float((ours[t] - theirs[t]).norm() / theirs[t].norm().clamp_min(1e-12)) for t in theirs
    ]
    return float(np.mean(errors))


class StyleIndex:
    """Maps a request's style image to the trained style it is, or refuses it.

    Three ways, first match wins:
    1. the style key starts with a trained style's file sha256 (the tiler sends keys
       `<sha256 of the stored file>@<tile size>`, and storage keeps the catalog's bytes,
       so a curated style chosen from the catalog is recognised without any compute);
    2. the sha256 of the decoded pixels equals a trained style's (the original file);
    3. nearest Gram statistics on Lite0 (`IdentifySettings`): a resized or re-encoded
       copy of a trained style. Anything farther than `max_distance` is refused.
       Measured for feedforward.lite0-v1 (b1, b3, b5 at 256 px): copies of its eight
       styles resized to 512 or 256 px or re-encoded as JPEG q80 lie at most 0.200 from
       their own style (and nearest to it); the other 19 curated styles lie at least
       0.465 from every trained one; between any two of the 27 curated styles, at
       least 0.447. Hence `max_distance` 0.3. A copy recoloured by histogram matching
       lies 0.38-1.15 away and is refused unless its key names the catalog file.
    Results are cached per key (or pixel digest), so tiles of one job identify once.
    """

    def __init__(
        self,
        styles: Sequence[TrainedStyle],
        grams: Mapping[int, Mapping[str, Tensor]],
        settings: IdentifySettings,
        encoder: Lite0Encoder,
        device: torch.device,
        *,
        cache_size: int = 256,
    ) -> None:
        self.styles = tuple(styles)
        self.settings = settings
        self._grams = grams
        self._encoder = encoder
        self._device = device
        self._by_file = {style.sha256: style for style in styles}
        self._by_pixels = {style.pixels_sha256: style for style in styles}
        self._cache: LruCache[str, TrainedStyle] = LruCache(cache_size)

    def identify(self, image: RGBImage, key: str | None, *, field: str) -> TrainedStyle:
        """The trained style `image` is; InvalidArgument naming the trained ones otherwise."""
        if key is not None:
            found = self._by_file.get(re.split(r"[@:]", key, maxsplit=1)[0].lower())
            if found is not None:
                return found
        cache_key = key if key is not None else pixels_digest(image)
        cached = self._cache.get(cache_key)
        if cached is not None:
            return cached
        found = self._by_pixels.get(pixels_digest(image) if key is not None else cache_key)
        if found is None:
            found = self._nearest(image, field=field)
        self._cache.put(cache_key, found)
        return found

    def distances(self, image: RGBImage) -> dict[int, float]:
        """Gram distance from `image` to every trained style, by slot."""
        ours = style_grams(self._encoder, image, self.settings, self._device)
        return {slot: gram_distance(ours, theirs) for slot, theirs in self._grams.items()}

    def _nearest(self, image: RGBImage, *, field: str) -> TrainedStyle:
        distances = self.distances(image)
        slot = min(distances, key=lambda s: distances[s])
        if distances[slot] <= self.settings.max_distance:
            return next(style for style in self.styles if style.slot == slot)
        titles = "; ".join(f"{style.title} ({style.file})" for style in self.styles)
        raise InvalidArgument(
            "feedforward models stylize only their trained styles: "
            f"{field} is none of them (nearest Gram distance {distances[slot]:.3f} > "
            f"{self.settings.max_distance}); trained styles: {titles}. "
            "Send one of these images, or use an adain or gatys model for any style.",
            field=field,
            reason="untrained_style",
        )
