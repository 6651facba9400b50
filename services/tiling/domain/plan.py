"""Pure rules: how an image is tiled, the result's id, which failures are permanent."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from gouache.imaging.errors import ImageRejected
from gouache.imaging.tiling import MIN_TILE_SIZE, Tile, plan_tiles
from gouache.runtime.errors import (
    FailedPrecondition,
    GouacheError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
)
from services.tiling.domain.model import (
    MAX_PLAN_SIDE,
    MAX_TILE_SIZE,
    Failure,
)

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_ID_BODY = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")

# Errors that the same input will always hit again: report them, never retry.
_PERMANENT: tuple[type[GouacheError], ...] = (
    InvalidArgument,
    FailedPrecondition,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
)


@dataclass(frozen=True)
class TilePlan:
    """The tiles of one image and the tile size and overlap they were planned with."""

    tiles: list[Tile]
    tile_size: int
    overlap: int


def plan_image(
    width: int, height: int, tile_size: int, overlap: int, *, field_prefix: str = "params."
) -> TilePlan:
    """Checks a tile size and overlap against the mesh limits and plans the tiles.

    The mesh accepts an overlap up to half the tile size; the planner needs strictly
    less, so exactly half becomes the largest overlap it takes. `field_prefix` is where
    tile_size and overlap sit in the caller's request, for error messages.
    """
    if width < 1 or height < 1:
        raise InvalidArgument(f"image size must be positive, got {width}x{height}", field="width")
    if width > MAX_PLAN_SIDE or height > MAX_PLAN_SIDE:
        raise InvalidArgument(
            f"images are at most {MAX_PLAN_SIDE} pixels on a side, got {width}x{height}",
            field="width",
        )
    if not MIN_TILE_SIZE <= tile_size <= MAX_TILE_SIZE:
        raise InvalidArgument(
            f"tile_size must be between {MIN_TILE_SIZE} and {MAX_TILE_SIZE} pixels "
            f"(or 0 for the model's default), got {tile_size}",
            field=f"{field_prefix}tile_size",
        )
    if not 0 <= overlap <= tile_size // 2:
        raise InvalidArgument(
            f"overlap must be between 0 and half the tile size ({tile_size // 2}), got {overlap}",
            field=f"{field_prefix}overlap",
        )
    overlap = min(overlap, (tile_size - 1) // 2)
    return TilePlan(plan_tiles(width, height, tile_size, overlap), tile_size, overlap)


def result_image_id(job_id: str) -> str:
    """The result's image id, derived from the job id so every attempt stores the same image.

    A job id made by new_id ("job_" and 26 base32 characters) keeps its body, so the
    result id sorts and dates like its job; any other job id is hashed into that form.
    """
    body = job_id.removeprefix("job_")
    if not _ID_BODY.fullmatch(body):
        value = int.from_bytes(hashlib.sha256(job_id.encode()).digest()[:16], "big")
        body = "".join(_CROCKFORD[(value >> (5 * i)) & 0x1F] for i in reversed(range(26)))
    return "img_" + body


def classify(exc: BaseException) -> Failure:
    """Sorts an error into permanent (report and stop) or transient (retry)."""
    if isinstance(exc, ImageRejected):
        return Failure("INVALID_ARGUMENT", exc.message, permanent=True)
    if isinstance(exc, _PERMANENT):
        return Failure(exc.code.name, exc.message, permanent=True)
    if isinstance(exc, GouacheError):
        return Failure(exc.code.name, exc.message, permanent=False)
    if isinstance(exc, TimeoutError):
        return Failure("DEADLINE_EXCEEDED", "a call from the worker timed out", permanent=False)
    if isinstance(exc, OSError):
        return Failure("UNAVAILABLE", f"a service was unreachable: {exc}", permanent=False)
    return Failure(
        "INTERNAL", "the worker hit an internal error; it has been logged", permanent=False
    )
