"""Ids, page sizes and page tokens."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gouache.db import new_id
from gouache.runtime.errors import InvalidArgument
from services.jobs.domain.paging import PageCursor, check_id, page_size


def test_check_id() -> None:
    job_id = new_id("job")
    assert check_id(f" {job_id} ", "job", field="job_id") == job_id


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "job_id is required"),
        ("job_123", "not a valid id"),
        (new_id("whk"), "not a valid id"),
        (new_id("job").lower(), "not a valid id"),
        ("job_01J9Z3K6X1T4YB7Q2M8N5R0C3D'; DROP", "not a valid id"),
    ],
)
def test_malformed_ids(value: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message) as caught:
        check_id(value, "job", field="job_id")
    assert caught.value.field == "job_id"


@pytest.mark.parametrize(("requested", "expected"), [(0, 20), (1, 1), (100, 100)])
def test_page_size(requested: int, expected: int) -> None:
    assert page_size(requested) == expected


@pytest.mark.parametrize("requested", [-1, 101])
def test_bad_page_size(requested: int) -> None:
    with pytest.raises(InvalidArgument, match="between 1 and 100") as caught:
        page_size(requested)
    assert caught.value.field == "page_size"


def test_cursor_round_trip() -> None:
    cursor = PageCursor(datetime(2025, 5, 6, 7, 8, 9, 123456, tzinfo=UTC), new_id("job"))
    token = cursor.encode()
    assert "=" not in token
    assert PageCursor.decode(token) == cursor


@pytest.mark.parametrize(
    "token",
    ["garbage", "e30", "!!!", PageCursor(datetime(2025, 1, 1, tzinfo=UTC), "job_x").encode()],
)
def test_bad_token(token: str) -> None:
    with pytest.raises(InvalidArgument, match="page_token is not valid") as caught:
        PageCursor.decode(token)
    assert caught.value.field == "page_token"
