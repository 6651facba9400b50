"""jobs' StorageClient against the real storage service: deleting a result image, and an
expired result's FAILED_PRECONDITION (reason `expired`) read back as ResultExpired."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest

from gouache.db import utc_now
from gouache.runtime.clients import CallOptions
from gouache.runtime.errors import NotFound
from services.jobs.clients import ResultExpired, StorageClient
from services.storage.records import EXPIRING
from tests.unit.storage.support import Harness, image_bytes, start_harness, stop_harness


class _Tokens:
    def __init__(self, harness: Harness) -> None:
        self._harness = harness

    async def token(self) -> str:
        return self._harness.service_token("usr_svc_jobs")


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[Harness, StorageClient]]:
    harness = await start_harness(tmp_path)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{harness.running.port}")
    try:
        yield harness, StorageClient(channel, CallOptions(_Tokens(harness), timeout_s=5))  # type: ignore[arg-type]
    finally:
        await channel.close()
        await stop_harness(harness)


async def _result(harness: Harness, seed: int) -> str:
    image = await harness.upload(
        image_bytes(seed=seed), metadata=harness.service_auth(), kind="result", owner_id="usr_alice"
    )
    return image.image_id


async def test_delete_a_result_then_not_found(setup: tuple[Harness, StorageClient]) -> None:
    harness, client = setup
    image_id = await _result(harness, 1)
    await client.delete_image(image_id)
    assert harness.stored_files() == []
    with pytest.raises(NotFound):
        await client.delete_image(image_id)


async def test_an_expired_result_is_result_expired(setup: tuple[Harness, StorageClient]) -> None:
    harness, client = setup
    image_id = await _result(harness, 2)
    assert image_id in await client.sign_download(image_id, 600)
    lifecycle = harness.service.lifecycle
    assert await lifecycle.store.begin_removal(image_id, EXPIRING, utc_now() - timedelta(hours=1))
    await lifecycle.sweep()
    with pytest.raises(ResultExpired, match="expired on") as expired:
        await client.sign_download(image_id, 600)
    stored = await lifecycle.store.get_image(image_id)
    assert stored is not None
    assert stored.expires_at is not None
    assert expired.value.expired_at == stored.expires_at
