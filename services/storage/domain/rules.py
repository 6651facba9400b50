"""Storage rules without I/O: input validation, limits, page tokens, access, blob keys."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import PurePosixPath

from gouache.imaging.errors import ImageRejected
from gouache.runtime.context import Principal
from gouache.runtime.errors import InvalidArgument
from services.storage.records import (
    CONTENT,
    RESULT,
    STYLE,
    SYSTEM_OWNER,
    ImageRecord,
    StyleCursor,
)
from services.storage.urls import is_image_id

ALLOWED_CONTENT_TYPES = ("image/png", "image/jpeg", "image/webp")
MAX_FILENAME_CHARS = 255
MAX_METADATA_BYTES = 16 * 1024
DEFAULT_DOWNLOAD_TTL_S = 3600
MAX_DOWNLOAD_TTL_S = 7 * 24 * 3600
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100
DOWNLOAD_CHUNK_BYTES = 1024 * 1024

_EXTENSIONS = {"png": "png", "jpeg": "jpg", "webp": "webp"}
_OWNER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@\-]{0,127}")
_FORBIDDEN_FILENAME_CHARS = frozenset("/\\\x00")
_PAGE_TOKEN_VERSION = 1


def normalize_content_type(value: str, *, field: str = "content_type") -> str:
    """The media type without parameters, lower-cased; only PNG, JPEG and WebP pass."""
    media_type = value.split(";", 1)[0].strip().lower()
    if media_type not in ALLOWED_CONTENT_TYPES:
        shown = f"{value.strip()!r}" if value.strip() else "empty"
        raise InvalidArgument(
            f"{field} is {shown}; it must be one of {', '.join(ALLOWED_CONTENT_TYPES)}",
            field=field,
            reason="unsupported_content_type",
        )
    return media_type


def validate_filename(value: str, *, field: str = "filename") -> str:
    """A file name (not a path): 1-255 characters, no path separators or control characters."""
    if not value.strip():
        raise InvalidArgument(f"{field} is required, e.g. 'photo.jpg'", field=field)
    if len(value) > MAX_FILENAME_CHARS:
        raise InvalidArgument(
            f"{field} is {len(value)} characters; the limit is {MAX_FILENAME_CHARS}", field=field
        )
    if any(char in _FORBIDDEN_FILENAME_CHARS or ord(char) < 0x20 for char in value):
        raise InvalidArgument(
            f"{field} must be a plain file name without '/', '\\' or control characters, "
            f"got {value!r}",
            field=field,
        )
    if value.strip() in (".", ".."):
        raise InvalidArgument(f"{field} must name a file, got {value!r}", field=field)
    return value


def validate_kind(value: str, *, allow_result: bool) -> str:
    """ "content" (the default when empty) or "style"; "result" only where allowed (services)."""
    kind = value.strip().lower() or CONTENT
    allowed = (CONTENT, STYLE, RESULT) if allow_result else (CONTENT, STYLE)
    if kind not in allowed:
        extra = "" if allow_result else " (only services store 'result' images)"
        raise InvalidArgument(
            f"kind must be {' or '.join(repr(k) for k in allowed)}{extra}, got {value!r}",
            field="kind",
        )
    return kind


def validate_image_id(value: str, *, field: str = "image_id") -> str:
    """An image id as new_id("img") makes them."""
    if not value:
        raise InvalidArgument(f"{field} is required", field=field)
    if not is_image_id(value):
        raise InvalidArgument(
            f"{field} {value!r} is not an image id (img_ followed by 26 characters)", field=field
        )
    return value


def validate_owner_id(value: str) -> str:
    """The project a service stores an image for (a user id names the user's personal
    project); the system owner is reserved."""
    if not value:
        raise InvalidArgument(
            "owner_id is required when a service uploads: pass the user the image belongs to",
            field="owner_id",
        )
    if not _OWNER_ID.fullmatch(value):
        raise InvalidArgument(f"owner_id {value!r} is not a valid user id", field="owner_id")
    if value == SYSTEM_OWNER:
        raise InvalidArgument(
            f"owner_id {SYSTEM_OWNER!r} is reserved for the curated catalog", field="owner_id"
        )
    return value


def validate_metadata_json(value: str) -> str:
    """Empty, or a JSON object of at most 16 KiB."""
    if not value:
        return ""
    if len(value.encode()) > MAX_METADATA_BYTES:
        raise InvalidArgument(
            f"metadata_json is larger than {MAX_METADATA_BYTES // 1024} KiB", field="metadata_json"
        )
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise InvalidArgument(
            f"metadata_json is not valid JSON: {exc}", field="metadata_json"
        ) from exc
    if not isinstance(parsed, dict):
        raise InvalidArgument("metadata_json must be a JSON object", field="metadata_json")
    return value


def download_ttl(ttl_seconds: int) -> timedelta:
    """The lifetime of a signed download URL: default 1 hour, 1 second to 7 days."""
    if ttl_seconds == 0:
        return timedelta(seconds=DEFAULT_DOWNLOAD_TTL_S)
    if not 1 <= ttl_seconds <= MAX_DOWNLOAD_TTL_S:
        raise InvalidArgument(
            f"ttl_seconds must be between 1 and {MAX_DOWNLOAD_TTL_S} (7 days), or 0 for the "
            f"default of {DEFAULT_DOWNLOAD_TTL_S}; got {ttl_seconds}",
            field="ttl_seconds",
        )
    return timedelta(seconds=ttl_seconds)


def page_size_or_default(page_size: int) -> int:
    """0 means the default (50); otherwise 1-100."""
    if page_size == 0:
        return DEFAULT_PAGE_SIZE
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidArgument(
            f"page_size must be between 1 and {MAX_PAGE_SIZE} (0 for the default of "
            f"{DEFAULT_PAGE_SIZE}); got {page_size}",
            field="page_size",
        )
    return page_size


def encode_page_token(listing: str, cursor: StyleCursor) -> str:
    """An opaque token for the page after cursor, tied to the listing it came from."""
    payload = {"v": _PAGE_TOKEN_VERSION, "l": listing, "c": cursor.curated, "s": cursor.style_id}
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_page_token(token: str, listing: str) -> StyleCursor | None:
    """The cursor in a token from encode_page_token; None for an empty token."""
    if not token:
        return None
    invalid = InvalidArgument(
        "page_token is not valid; pass next_page_token from the previous response unchanged, "
        "with the same curated filter",
        field="page_token",
    )
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw)
    except (ValueError, binascii.Error) as exc:
        raise invalid from exc
    if (
        not isinstance(payload, dict)
        or payload.get("v") != _PAGE_TOKEN_VERSION
        or payload.get("l") != listing
        or not isinstance(payload.get("c"), bool)
        or not isinstance(payload.get("s"), str)
    ):
        raise invalid
    return StyleCursor(curated=payload["c"], style_id=payload["s"])


def may_read(principal: Principal, image: ImageRecord) -> bool:
    """The owning project's members and services read an image; the curated catalog is
    readable by everyone."""
    return image.curated or principal.is_service or image.owner_id == principal.project_id


def blob_key(image_id: str, sha256: str, fmt: str) -> str:
    """Where an image's bytes live: fanned out by id, and naming the content.

    The sha256 in the key means two different uploads racing for the same image id
    never overwrite each other's bytes; the loser deletes only its own object.
    """
    return f"images/{image_id[-2:]}/{image_id}-{sha256[:16]}.{_EXTENSIONS[fmt]}"


def title_from_filename(filename: str) -> str:
    """A readable title from a file name: "starry_night-1889.jpg" gives "Starry Night 1889"."""
    stem = PurePosixPath(filename).stem
    words = re.split(r"[\s_\-]+", stem)
    return " ".join(word[:1].upper() + word[1:] for word in words if word) or filename


async def read_capped(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """Joins chunks, refusing (and no longer reading) as soon as they pass limit bytes."""
    parts: list[bytes] = []
    total = 0
    async for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise too_large(limit)
        parts.append(chunk)
    return b"".join(parts)


def too_large(limit: int) -> InvalidArgument:
    """The one error for an image over the size limit, on every upload path.

    INVALID_ARGUMENT rather than RESOURCE_EXHAUSTED: the limit is a fixed property of the
    product (uploads up to 25 MB), not a quota that frees up, and clients commonly retry
    RESOURCE_EXHAUSTED. The HTTP upload answers it as 413 with the same code in the body.
    """
    return InvalidArgument(
        f"image exceeds {_format_limit(limit)}; send a smaller image", reason="too_large"
    )


def _format_limit(limit: int) -> str:
    mib = limit / (1024 * 1024)
    if mib >= 1:
        return f"{mib:g} MB"
    return f"{limit} bytes"


def rejected_image(exc: ImageRejected) -> InvalidArgument:
    """The INVALID_ARGUMENT for an image the codec refused, keeping its reason."""
    return InvalidArgument(exc.message, field="image", reason=exc.reason)


def listing_for(curated: bool | None) -> str:
    """Which ListStyles listing a curated filter asks for (page tokens are tied to it)."""
    return "catalog" if curated is True else "own" if curated is False else "all"
