"""Deletion and retention of images against real databases (SQLite and PostgreSQL) and the
local blob store: blob and row go together, a crash midway is finished by the sweep, the
sweep is bounded, and an expired image says so (reason `expired`) until it is forgotten."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gouache.blobs import LocalBlobStore
from gouache.db import create_engine
from gouache.imaging.codec import ImageLimits
from gouache.runtime.context import Principal
from gouache.runtime.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from services.storage.domain import CatalogEntry, ImageLibrary, UploadHeader
from services.storage.domain.lifecycle import ImageLifecycle, RetentionPolicy
from services.storage.records import DELETING, EXPIRING
from services.storage.store import StorageStore
from services.storage.urls import UrlSigner
from tests.unit.storage.support import image_bytes

SCOPES = frozenset({"read:jobs", "write:jobs"})
ALICE = Principal(user_id="usr_alice", role="user", scopes=SCOPES)
ALICE_ENTERPRISE = Principal(user_id="usr_alice", role="user", scopes=SCOPES, plan="enterprise")
BOB = Principal(user_id="usr_bob", role="user", scopes=SCOPES)
ADMIN = Principal(user_id="usr_admin", role="admin", scopes=SCOPES)
TILING = Principal(user_id="usr_tiling", role="service", scopes=frozenset({"internal"}))
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    library: ImageLibrary
    lifecycle: ImageLifecycle
    store: StorageStore
    clock: Clock
    root: Path

    def blobs(self) -> list[Path]:
        return sorted(p for p in self.root.rglob("*") if p.is_file())


@pytest.fixture
async def world(db_url: str, tmp_path: Path) -> AsyncIterator[World]:
    store = StorageStore(create_engine(db_url))
    await store.create_schema()
    clock = Clock()
    blobs = LocalBlobStore(tmp_path / "blobs")
    library = ImageLibrary(
        store,
        blobs,
        UrlSigner(b"k" * 32, "https://edge.example"),
        limits=ImageLimits(),
        upload_ttl=timedelta(minutes=15),
        retention=RetentionPolicy(days=30, per_plan={"enterprise": 90}),
        clock=clock,
    )
    lifecycle = ImageLifecycle(
        store, blobs, batch_size=2, stall_s=60, tombstone_days=30, clock=clock
    )
    try:
        yield World(library, lifecycle, store, clock, tmp_path / "blobs")
    finally:
        await store.close()


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _upload(
    world: World, who: Principal, seed: int, kind: str = "content", owner: str = ""
) -> str:
    header = UploadHeader(filename=f"p{seed}.png", kind=kind, owner_id=owner)
    image = await world.library.upload(who, header, _one(image_bytes(seed=seed)))
    return image.image_id


async def test_an_owner_deletes_an_image_blob_and_row(world: World) -> None:
    image_id = await _upload(world, ALICE, 1)
    style_id = await _upload(world, ALICE, 2, kind="style")
    assert len(world.blobs()) == 2
    # Another user cannot, and cannot tell it exists.
    with pytest.raises(NotFound):
        await world.lifecycle.delete_image(BOB, image_id)
    await world.lifecycle.delete_image(ALICE, image_id)
    await world.lifecycle.delete_image(ALICE, style_id)
    assert world.blobs() == []
    assert await world.store.get_image(image_id) is None
    assert await world.store.get_image(style_id) is None
    page = await world.library.list_styles(ALICE, curated=False, page_size=10, page_token="")
    assert page.styles == []
    with pytest.raises(NotFound, match=f"image {image_id} not found"):
        await world.library.get_image(ALICE, image_id)
    with pytest.raises(NotFound):
        await world.lifecycle.delete_image(ALICE, image_id)  # a second delete


async def test_who_may_delete_what(world: World) -> None:
    result_id = await _upload(world, TILING, 3, kind="result", owner=ALICE.user_id)
    with pytest.raises(FailedPrecondition, match="DELETE /v1/jobs") as refused:
        await world.lifecycle.delete_image(ALICE, result_id)
    assert refused.value.reason == "result_of_job"
    await world.lifecycle.delete_image(TILING, result_id)  # jobs deletes a job's result
    curated, _ = await world.library.add_curated_style(
        image_bytes(seed=4), CatalogEntry("Sea"), filename="sea.png"
    )
    with pytest.raises(PermissionDenied, match="curated"):
        await world.lifecycle.delete_image(ALICE, curated.image.image_id)
    bobs = await _upload(world, BOB, 5)
    await world.lifecycle.delete_image(ADMIN, bobs)
    await world.lifecycle.delete_image(ADMIN, curated.image.image_id)
    assert world.blobs() == []


async def test_retention_by_plan_then_410_then_forgotten(world: World) -> None:
    plain = await _upload(world, ALICE, 10)
    longer = await _upload(world, ALICE_ENTERPRISE, 11)
    curated, _ = await world.library.add_curated_style(
        image_bytes(seed=12), CatalogEntry("Sky"), filename="sky.png"
    )
    stored = await world.store.get_image(plain)
    assert stored is not None
    assert stored.expires_at == T0 + timedelta(days=30)
    assert curated.image.expires_at is None

    world.clock.now = T0 + timedelta(days=30, seconds=1)
    report = await world.lifecycle.sweep()
    assert report.expired == 1
    assert len(world.blobs()) == 2  # the enterprise upload and the curated style remain
    with pytest.raises(FailedPrecondition, match="expired on 2026-01-31") as expired:
        await world.library.get_image(ALICE, plain)
    assert expired.value.reason == "expired"
    with pytest.raises(FailedPrecondition, match="upload it again"):
        await world.library.resolve(ALICE, world.library.file_url(plain), "")
    # Not another user's business: still NOT_FOUND for them.
    with pytest.raises(NotFound):
        await world.library.get_image(BOB, plain)
    tombstone = await world.store.get_image(plain)
    assert tombstone is not None
    assert tombstone.filename == ""

    world.clock.now = T0 + timedelta(days=61)
    report = await world.lifecycle.sweep()
    assert (report.expired, report.forgotten) == (0, 1)
    assert await world.store.get_image(plain) is None
    with pytest.raises(NotFound):
        await world.library.get_image(ALICE, plain)

    world.clock.now = T0 + timedelta(days=91)
    assert (await world.lifecycle.sweep()).expired == 1
    assert await world.library.get_image(ALICE, curated.image.image_id)
    assert [p.name for p in world.blobs()] == [curated.image.blob_key.rsplit("/", 1)[-1]]
    assert longer


async def test_a_sweep_is_bounded_by_its_batch(world: World) -> None:
    for seed in range(5):
        await _upload(world, ALICE, 20 + seed)
    world.clock.now = T0 + timedelta(days=31)
    assert [(await world.lifecycle.sweep()).expired for _ in range(4)] == [2, 2, 1, 0]
    assert world.blobs() == []


@pytest.mark.parametrize("removal", [DELETING, EXPIRING])
async def test_a_removal_interrupted_midway_is_finished_by_the_sweep(
    world: World, removal: str
) -> None:
    image_id = await _upload(world, ALICE, 30)
    # The process died right after marking the row: the blob is still there.
    assert await world.store.begin_removal(image_id, removal, world.clock.now)
    assert len(world.blobs()) == 1
    with pytest.raises((NotFound, FailedPrecondition)):
        await world.library.get_image(ALICE, image_id)  # hidden at once
    # Not stalled yet: a removal in flight is left to finish.
    assert (await world.lifecycle.sweep()).finished == 0
    world.clock.now += timedelta(seconds=61)
    assert (await world.lifecycle.sweep()).finished == 1
    assert world.blobs() == []
    row = await world.store.get_image(image_id)
    assert row is None if removal == DELETING else row is not None and row.removal == "expired"


async def test_erase_owner_removes_everything_of_theirs_in_bounded_calls(world: World) -> None:
    for seed in range(3):
        await _upload(world, ALICE, 40 + seed)
    result = await _upload(world, TILING, 43, kind="result", owner=ALICE.user_id)
    bobs = await _upload(world, BOB, 44)
    # One of hers is a tombstone already, one was being deleted when a process died.
    world.clock.now = T0 + timedelta(days=31)
    assert await world.store.begin_removal(result, EXPIRING, world.clock.now)
    await world.library.sign_upload(
        ALICE, filename="x.png", content_type="image/png", kind="content"
    )

    removed, done = await world.lifecycle.erase_owner(ALICE.user_id, 2)
    assert (removed, done) == (2, False)
    removed, done = await world.lifecycle.erase_owner(ALICE.user_id, 2)
    assert (removed, done) == (2, True)
    assert await world.lifecycle.erase_owner(ALICE.user_id, 2) == (0, True)
    assert await world.store.owner_image_ids(ALICE.user_id, 10) == []
    assert await world.store.delete_reservations(ALICE.user_id) == 0
    assert [await world.store.get_image(bobs)] != [None]
    assert len(world.blobs()) == 1
    with pytest.raises(InvalidArgument, match="owner_id is required"):
        await world.lifecycle.erase_owner("", 2)
