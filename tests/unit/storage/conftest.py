"""Fixtures: a running in-process storage service and an HTTP client for its file server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.unit.storage.support import Harness, start_harness, stop_harness

# Small enough that the oversized-body tests stay fast, large enough for the test images.
TEST_UPLOAD_CAP = 256 * 1024


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = await start_harness(tmp_path, max_upload_bytes=TEST_UPLOAD_CAP)
    try:
        yield harness
    finally:
        await stop_harness(harness)


@pytest.fixture
async def http(storage: Harness) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=storage.files_url, timeout=10) as client:
        yield client
