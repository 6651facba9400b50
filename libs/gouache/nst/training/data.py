"""Training images from directories: loaded once at a fixed scale, seeded random crops, a held-out split."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torch import Tensor

from gouache.nst.encoders.lite0 import file_sha256

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})


class DataError(ValueError):
    """A training directory that cannot give what the run needs (no images, too few)."""


def list_images(directory: Path) -> list[Path]:
    """The image files directly in `directory`, sorted by name so runs see the same order."""
    if not directory.is_dir():
        raise DataError(f"{directory} is not a directory")
    found = sorted(
        path
        for path in directory.iterdir()
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES
    )
    if not found:
        raise DataError(f"{directory} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return found


def split_holdout(
    paths: Sequence[Path], fraction: float, seed: int
) -> tuple[list[Path], list[Path]]:
    """Splits files into (train, held out), at least one in each, stable for a seed.

    Files are ordered by a hash of the seed and their name, so adding an image to the
    directory moves no other image across the split.
    """
    if len(paths) < 2:
        raise DataError(f"need at least two images to hold one out, got {len(paths)}")
    ranked = sorted(
        paths, key=lambda path: hashlib.sha256(f"{seed}:{path.name}".encode()).hexdigest()
    )
    held = min(len(paths) - 1, max(1, round(fraction * len(paths))))
    return sorted(ranked[held:]), sorted(ranked[:held])


def load_image(path: Path, short_side: int) -> Tensor:
    """Decodes an image (EXIF orientation applied) as uint8 RGB CHW, short side resized."""
    with Image.open(path) as opened:
        picture = ImageOps.exif_transpose(opened).convert("RGB")
    width, height = picture.size
    scale = short_side / min(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if size != picture.size:
        picture = picture.resize(size, Image.Resampling.LANCZOS)
    return torch.from_numpy(np.asarray(picture, dtype=np.uint8).copy()).permute(2, 0, 1)


@dataclass(frozen=True)
class CropSpec:
    """How a crop is drawn: output side, side range as a share of the short side, flips."""

    size: int
    scale: tuple[float, float]
    flip: bool


class ImageBank:
    """A set of images held in memory as uint8 tensors, and the crops drawn from them."""

    def __init__(self, paths: Sequence[Path], short_side: int) -> None:
        if not paths:
            raise DataError("an image bank needs at least one image")
        self.paths = tuple(paths)
        self.images = tuple(load_image(path, short_side) for path in self.paths)

    def __len__(self) -> int:
        return len(self.images)

    def crops(self, count: int, spec: CropSpec, generator: torch.Generator) -> Tensor:
        """`count` random crops as float NCHW in [0, 1], all drawn from `generator`."""
        batch = []
        for _ in range(count):
            index = int(torch.randint(len(self.images), (1,), generator=generator))
            image = self.images[index]
            height, width = int(image.shape[1]), int(image.shape[2])
            low, high = spec.scale
            share = low + (high - low) * float(torch.rand((), generator=generator))
            side = max(1, min(height, width, round(share * min(height, width))))
            top = int(torch.randint(height - side + 1, (1,), generator=generator))
            left = int(torch.randint(width - side + 1, (1,), generator=generator))
            crop = image[None, :, top : top + side, left : left + side].float() / 255.0
            if side != spec.size:
                crop = F.interpolate(
                    crop, size=(spec.size, spec.size), mode="bilinear", antialias=True
                )
            if spec.flip and float(torch.rand((), generator=generator)) < 0.5:
                crop = crop.flip(-1)
            batch.append(crop.clamp(0.0, 1.0))
        return torch.cat(batch)


def find_corpus_manifest(*directories: Path) -> Path | None:
    """The corpus's manifest.json: in a data directory or its parent, when there is one."""
    for directory in directories:
        for candidate in (directory / "manifest.json", directory.parent / "manifest.json"):
            if candidate.is_file():
                return candidate
    return None


def files_digest(paths: Sequence[Path], root: Path) -> str:
    """sha256 over the sorted (path relative to `root`, file sha256) pairs: the data used."""
    digest = hashlib.sha256()
    for path in sorted(paths, key=lambda p: p.relative_to(root).as_posix()):
        digest.update(f"{path.relative_to(root).as_posix()}\t{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def step_generator(seed: int, step: int, stream: int = 0) -> torch.Generator:
    """A generator for one step's random draws, a pure function of (seed, step, stream).

    Deriving each step's randomness from its number, instead of carrying one generator
    along, means a run resumed from a checkpoint draws exactly the batches it would
    have drawn without the interruption; no random state has to be saved.
    """
    key = hashlib.sha256(f"{seed}:{step}:{stream}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(key[:8], "little") & ((1 << 63) - 1))
