"""Identifiers and list paging: id formats, page sizes and opaque keyset page tokens."""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from gouache.runtime.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
_ID_BODY = r"[0-9A-HJKMNP-TV-Z]{26}"
_TOKEN_VERSION = 1


def check_id(value: str, prefix: str, *, field: str) -> str:
    """Refuses an empty or malformed id (e.g. job_01J9Z3K6X1T4YB7Q2M8N5R0C3D)."""
    text = value.strip()
    if not text:
        raise InvalidArgument(f"{field} is required", field=field)
    if not re.fullmatch(f"{prefix}_{_ID_BODY}", text):
        raise InvalidArgument(
            f"{field} {value!r} is not a valid id; ids look like {prefix}_ followed by 26 "
            "letters and digits, as returned when the resource was created",
            field=field,
        )
    return text


def page_size(requested: int) -> int:
    """0 means the default (20); otherwise 1-100."""
    if requested == 0:
        return DEFAULT_PAGE_SIZE
    if not 1 <= requested <= MAX_PAGE_SIZE:
        raise InvalidArgument(
            f"page_size must be between 1 and {MAX_PAGE_SIZE} (0 for {DEFAULT_PAGE_SIZE}), "
            f"got {requested}",
            field="page_size",
        )
    return requested


def encode_cursor(created_at: datetime, item_id: str) -> str:
    """An opaque keyset page token: where a newest-first page ended (time, then id)."""
    raw = json.dumps(
        {"v": _TOKEN_VERSION, "t": created_at.isoformat(), "id": item_id},
        separators=(",", ":"),
    )
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(token: str, prefix: str) -> tuple[datetime, str]:
    """Reads a token from encode_cursor whose id has this prefix; else INVALID_ARGUMENT."""
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(data, dict) or data.get("v") != _TOKEN_VERSION:
            raise ValueError("unknown token version")
        created_at = datetime.fromisoformat(str(data["t"]))
        if created_at.tzinfo is None:
            raise ValueError("naive timestamp")
        item_id = check_id(str(data["id"]), prefix, field="page_token")
    except (ValueError, KeyError, TypeError, binascii.Error, InvalidArgument):
        raise InvalidArgument(
            "page_token is not valid; pass the next_page_token of the previous response "
            "unchanged, or leave it empty for the first page",
            field="page_token",
        ) from None
    return created_at.astimezone(UTC), item_id


@dataclass(frozen=True)
class PageCursor:
    """Where the previous page ended: the last job's creation time and id (newest first)."""

    created_at: datetime
    job_id: str

    def encode(self) -> str:
        """The opaque next_page_token."""
        return encode_cursor(self.created_at, self.job_id)

    @classmethod
    def decode(cls, token: str) -> PageCursor:
        """Reads a token from encode(); anything else is INVALID_ARGUMENT."""
        created_at, job_id = decode_cursor(token, "job")
        return cls(created_at=created_at, job_id=job_id)
