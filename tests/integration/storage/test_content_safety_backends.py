"""Content safety against real databases (SQLite and PostgreSQL): a refused upload writes no
row and no blob, an accepted one keeps its score through the round trip."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from gouache.blobs import LocalBlobStore
from gouache.db import create_engine
from gouache.imaging.codec import ImageLimits, validate_and_decode
from gouache.runtime.context import Principal
from gouache.runtime.errors import InvalidArgument
from services.storage.domain import ImageLibrary, UploadHeader
from services.storage.domain.screening import ContentSafety
from services.storage.store import StorageStore
from services.storage.urls import UrlSigner
from tests.e2e.images import small
from tests.unit.storage.support import shared_scorer

ALICE = Principal(user_id="usr_alice", role="user", scopes=frozenset({"read:jobs", "write:jobs"}))


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[StorageStore]:
    store = StorageStore(create_engine(db_url))
    await store.create_schema()
    try:
        yield store
    finally:
        await store.close()


def _library(store: StorageStore, root: Path, threshold: float) -> ImageLibrary:
    return ImageLibrary(
        store,
        LocalBlobStore(root),
        UrlSigner(b"k" * 32, "https://edge.example"),
        limits=ImageLimits(),
        upload_ttl=timedelta(minutes=15),
        safety=ContentSafety(scorer=shared_scorer(), threshold=threshold),
    )


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_refused_uploads_leave_nothing_and_scores_round_trip(
    store: StorageStore, tmp_path: Path
) -> None:
    data = small("coffee", 96)
    strict = _library(store, tmp_path / "blobs", threshold=0.0)
    ticket = await strict.sign_upload(
        ALICE, filename="coffee.png", content_type="image/png", kind="content"
    )
    query = dict(part.split("=", 1) for part in ticket.upload_url.split("?", 1)[1].split("&"))
    reservation = await strict.check_signed_upload(
        ticket.image_id, expires=query["expires"], sig=query["sig"], content_type="image/png"
    )
    with pytest.raises(InvalidArgument) as refused:
        await strict.complete_signed_upload(reservation, data)
    assert refused.value.reason == "unsafe_content"
    with pytest.raises(InvalidArgument):
        await strict.upload(ALICE, UploadHeader(kind="style"), _one(data))
    assert await store.get_image(ticket.image_id) is None
    assert await store.get_reservation(ticket.image_id) is not None
    assert not any(path.is_file() for path in (tmp_path / "blobs").rglob("*"))

    lenient = _library(store, tmp_path / "blobs", threshold=0.8)
    image = await lenient.complete_signed_upload(reservation, data)
    expected = shared_scorer().score(validate_and_decode(data).pixels)
    stored = await store.get_image(image.image_id)
    assert stored is not None
    assert stored.nsfw_score == pytest.approx(expected, rel=1e-9)
    assert stored == image
