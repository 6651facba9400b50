"""The storage rules against real databases: the same tests on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest

from gouache.blobs import LocalBlobStore
from gouache.db import create_engine, new_id
from gouache.imaging.codec import ImageLimits
from gouache.runtime.context import Principal
from gouache.runtime.errors import AlreadyExists, FailedPrecondition
from services.storage.catalog import import_catalog
from services.storage.domain import CatalogEntry, ImageLibrary, UploadHeader
from services.storage.store import StorageStore
from services.storage.urls import UrlSigner
from tests.unit.storage.support import image_bytes, start_harness, stop_harness

ALICE = Principal(user_id="usr_alice", role="user", scopes=frozenset({"read:jobs", "write:jobs"}))
BOB = Principal(user_id="usr_bob", role="user", scopes=frozenset({"read:jobs", "write:jobs"}))
TILING = Principal(user_id="usr_tiling", role="service", scopes=frozenset({"internal"}))


@pytest.fixture
async def library(db_url: str, tmp_path: Path) -> AsyncIterator[ImageLibrary]:
    store = StorageStore(create_engine(db_url))
    await store.create_schema()
    await store.create_schema()
    try:
        yield ImageLibrary(
            store,
            LocalBlobStore(tmp_path / "blobs"),
            UrlSigner(b"k" * 32, "https://edge.example"),
            limits=ImageLimits(),
            upload_ttl=timedelta(minutes=15),
        )
    finally:
        await store.close()


async def _chunks(data: bytes, size: int = 4096) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _root(library: ImageLibrary) -> Path:
    assert isinstance(library.blobs, LocalBlobStore)
    return library.blobs.root


def _blob_files(library: ImageLibrary) -> list[Path]:
    return sorted(path for path in _root(library).rglob("*") if path.is_file())


async def test_signed_upload_flow(library: ImageLibrary) -> None:
    ticket = await library.sign_upload(
        ALICE, filename="cat.png", content_type="image/png", kind="style"
    )
    with pytest.raises(FailedPrecondition):
        await library.resolve(TILING, ticket.file_url, "usr_alice")
    query = ticket.upload_url.split("?", 1)[1]
    params = dict(part.split("=", 1) for part in query.split("&"))
    reservation = await library.check_signed_upload(
        ticket.image_id, expires=params["expires"], sig=params["sig"], content_type="image/png"
    )
    assert reservation.expires_at == ticket.expires_at
    assert reservation.expires_at.tzinfo is not None
    image = await library.complete_signed_upload(reservation, image_bytes(seed=1))
    assert image.created_at.tzinfo is not None
    with pytest.raises(AlreadyExists):
        await library.complete_signed_upload(reservation, image_bytes(seed=2))
    with pytest.raises(AlreadyExists):
        await library.check_signed_upload(
            ticket.image_id, expires=params["expires"], sig=params["sig"], content_type="image/png"
        )
    resolved = await library.resolve(TILING, ticket.file_url, "usr_alice")
    assert resolved == image
    assert resolved.created_at == image.created_at
    page = await library.list_styles(ALICE, curated=False, page_size=0, page_token="")
    assert [view.image.image_id for view in page.styles] == [ticket.image_id]
    assert page.styles[0].style.title == "Cat"
    assert _blob_files(library) == [_root(library) / image.blob_key]


async def test_concurrent_retries_of_a_result_store_one_image(library: ImageLibrary) -> None:
    image_id = new_id("img")
    data = image_bytes(seed=3)
    header = UploadHeader(image_id=image_id, owner_id="usr_alice", kind="result")
    images = await asyncio.gather(
        *(library.upload(TILING, header, _chunks(data)) for _ in range(4))
    )
    assert {image.image_id for image in images} == {image_id}
    assert len({image.created_at for image in images}) == 1
    assert len(_blob_files(library)) == 1


async def test_concurrent_different_results_under_one_id(library: ImageLibrary) -> None:
    image_id = new_id("img")
    header = UploadHeader(image_id=image_id, owner_id="usr_alice", kind="result")
    outcomes = await asyncio.gather(
        *(library.upload(TILING, header, _chunks(image_bytes(seed=10 + i))) for i in range(3)),
        return_exceptions=True,
    )
    stored = [outcome for outcome in outcomes if not isinstance(outcome, BaseException)]
    conflicts = [outcome for outcome in outcomes if isinstance(outcome, AlreadyExists)]
    assert len(stored) == 1
    assert len(conflicts) == 2
    winner = await library.store.get_image(image_id)
    assert winner is not None
    # The one blob left is the winner's, with the winner's bytes.
    files = _blob_files(library)
    assert files == [_root(library) / winner.blob_key]
    assert hashlib.sha256(files[0].read_bytes()).hexdigest() == winner.sha256


async def test_style_listing_pages_on_both_backends(library: ImageLibrary) -> None:
    catalog = []
    for i in range(5):
        view, _ = await library.add_curated_style(
            image_bytes(seed=100 + i),
            CatalogEntry(title=f"C{i}", tags=("a", "b")),
            filename="c.png",
        )
        catalog.append(view.style.style_id)
        assert view.style.tags == ("a", "b")
    own = []
    for i in range(3):
        image = await library.upload(
            ALICE,
            UploadHeader(kind="style", filename=f"o{i}.png"),
            _chunks(image_bytes(seed=200 + i)),
        )
        own.append(image.image_id)
    await library.upload(BOB, UploadHeader(kind="style"), _chunks(image_bytes(seed=300)))

    seen = []
    token = ""
    while True:
        page = await library.list_styles(ALICE, curated=None, page_size=3, page_token=token)
        seen += [
            view.style.style_id if view.style.curated else view.image.image_id
            for view in page.styles
        ]
        token = page.next_page_token
        if not token:
            break
    assert seen == catalog + own


async def test_concurrent_catalog_imports_store_each_style_once(
    library: ImageLibrary, tmp_path: Path
) -> None:
    directory = tmp_path / "styles"
    directory.mkdir()
    for i in range(3):
        (directory / f"style_{i}.png").write_bytes(image_bytes(seed=500 + i))
    reports = await asyncio.gather(*(import_catalog(library, directory) for _ in range(3)))
    assert sum(len(report.imported) for report in reports) == 3
    assert all(not report.rejected for report in reports)
    page = await library.list_styles(ALICE, curated=True, page_size=100, page_token="")
    assert len(page.styles) == 3
    assert len(_blob_files(library)) == 3


async def test_expired_reservations_are_purged(library: ImageLibrary) -> None:
    ticket = await library.sign_upload(ALICE, filename="a.png", content_type="image/png", kind="")
    assert await library.purge_reservations(timedelta(0)) == 0
    assert await library.store.purge_reservations(ticket.expires_at) == 0
    assert await library.store.purge_reservations(ticket.expires_at + timedelta(seconds=1)) == 1
    assert await library.store.get_reservation(ticket.image_id) is None


async def test_the_service_runs_on_the_database(db_url: str, tmp_path: Path) -> None:
    harness = await start_harness(tmp_path, database_url=db_url)
    try:
        data = image_bytes("jpeg", seed=42)
        image = await harness.upload(data, metadata=harness.auth())
        assert await harness.download(image.image_id, harness.auth()) == data
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await harness.download(image.image_id, harness.auth("usr_bob"))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        await stop_harness(harness)
