"""Sortable unique ids: a type prefix and a ULID-style body (48-bit ms time + 80 random bits)."""

from __future__ import annotations

import re
import secrets
import threading
import time
from datetime import UTC, datetime

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
_DECODE = {char: index for index, char in enumerate(_ALPHABET)}
_BODY_LENGTH = 26  # 26 * 5 = 130 bits hold the 128-bit value; the top two bits stay zero
_RANDOM_BITS = 80
_MAX_RANDOM = (1 << _RANDOM_BITS) - 1
_PREFIX = re.compile(r"[a-z][a-z0-9]{0,15}")


class _MonotonicSource:
    """Makes 128-bit values that strictly increase within this process.

    Values made in the same millisecond (or after the wall clock stepped back) reuse the
    last timestamp and increment the random part, as the ULID spec's monotonic mode does,
    so ids sort in creation order even when several are made per millisecond.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = -1
        self._last_random = 0

    def next_value(self) -> int:
        now_ms = time.time_ns() // 1_000_000
        with self._lock:
            if now_ms > self._last_ms:
                self._last_ms = now_ms
                self._last_random = secrets.randbits(_RANDOM_BITS)
            elif self._last_random < _MAX_RANDOM:
                self._last_random += 1
            else:
                self._last_ms += 1
                self._last_random = secrets.randbits(_RANDOM_BITS)
            return (self._last_ms << _RANDOM_BITS) | self._last_random


_SOURCE = _MonotonicSource()


def _encode(value: int) -> str:
    chars = []
    for _ in range(_BODY_LENGTH):
        chars.append(_ALPHABET[value & 0x1F])
        value >>= 5
    return "".join(reversed(chars))


def _decode(body: str) -> int:
    value = 0
    for char in body:
        value = (value << 5) | _DECODE[char]
    return value


def new_id(prefix: str) -> str:
    """Return a new id such as ``job_01J9Z3K6X1T4YB7Q2M8N5R0C3D``.

    The body is 26 Crockford base32 characters: a 48-bit millisecond Unix timestamp and 80
    random bits. Ids compare (as strings) in creation order, so they make good primary keys
    and tie-breakers; the prefix says what the id names and must be 1-16 lowercase letters
    or digits, starting with a letter.
    """
    if not _PREFIX.fullmatch(prefix):
        raise ValueError(f"id prefix must match {_PREFIX.pattern!r}, got {prefix!r}")
    return f"{prefix}_{_encode(_SOURCE.next_value())}"


def id_timestamp(value: str) -> datetime:
    """Return the UTC creation time (millisecond precision) encoded in an id from new_id."""
    _, _, body = value.rpartition("_")
    if len(body) != _BODY_LENGTH or any(char not in _DECODE for char in body):
        raise ValueError(f"not an id made by new_id: {value!r}")
    millis = _decode(body) >> _RANDOM_BITS
    return datetime.fromtimestamp(millis / 1000, tz=UTC)
