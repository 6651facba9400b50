"""ResultLinks: a result URL storage signed at upload answers reads of the job while it is
fresh and the result kept; otherwise storage signs, and its errors reach the caller."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gouache.results import ResultLink
from services.jobs.clients import ResultExpired
from services.jobs.result_links import ResultLinks

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class Storage:
    def __init__(self) -> None:
        self.signed: list[tuple[str, int]] = []
        self.deleted: list[str] = []
        self.expired = False

    async def sign_download(self, image_id: str, ttl_s: int) -> str:
        self.signed.append((image_id, ttl_s))
        if self.expired:
            raise ResultExpired(image_id, None)
        return f"https://edge/v1/files/{image_id}?sig=storage"

    async def delete_image(self, image_id: str) -> None:
        self.deleted.append(image_id)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def _links(capacity: int = 8) -> tuple[ResultLinks, Storage, Clock]:
    storage, clock = Storage(), Clock()
    return ResultLinks(storage, capacity=capacity, now=clock), storage, clock


def _link(minutes: int, *, kept_for: timedelta | None = None) -> ResultLink:
    return ResultLink(
        url="https://edge/v1/files/img_1?sig=upload",
        url_expires_at=NOW + timedelta(minutes=minutes),
        result_expires_at=None if kept_for is None else NOW + kept_for,
    )


async def test_a_remembered_url_answers_without_storage() -> None:
    links, storage, _ = _links()
    links.remember("img_1", _link(60))

    assert await links.sign_download("img_1", 3600) == "https://edge/v1/files/img_1?sig=upload"
    assert storage.signed == []
    assert (links.hits, links.misses) == (1, 0)


async def test_past_half_its_lifetime_storage_signs_again() -> None:
    links, storage, clock = _links()
    links.remember("img_1", _link(60))
    clock.now = NOW + timedelta(minutes=31)

    assert await links.sign_download("img_1", 3600) == "https://edge/v1/files/img_1?sig=storage"
    assert storage.signed == [("img_1", 3600)]
    # Not remembered: storage's answer does not say when the result's retention ends.
    await links.sign_download("img_1", 3600)
    assert len(storage.signed) == 2


async def test_a_result_past_its_retention_is_storages_to_answer() -> None:
    links, storage, clock = _links()
    links.remember("img_1", _link(60, kept_for=timedelta(minutes=5)))
    storage.expired = True
    clock.now = NOW + timedelta(minutes=5)

    with pytest.raises(ResultExpired):
        await links.sign_download("img_1", 3600)


async def test_a_longer_lifetime_than_the_link_has_left_goes_to_storage() -> None:
    links, storage, _ = _links()
    links.remember("img_1", _link(10))

    await links.sign_download("img_1", 3600)
    assert storage.signed == [("img_1", 3600)]


async def test_deleting_the_result_forgets_its_url() -> None:
    links, storage, _ = _links()
    links.remember("img_1", _link(60))

    await links.delete_image("img_1")
    assert storage.deleted == ["img_1"]
    await links.sign_download("img_1", 3600)
    assert storage.signed == [("img_1", 3600)]


async def test_the_oldest_url_goes_when_full() -> None:
    links, storage, _ = _links(capacity=2)
    for image_id in ("img_a", "img_b", "img_c"):
        links.remember(image_id, _link(60))

    await links.sign_download("img_a", 3600)
    await links.sign_download("img_c", 3600)
    assert storage.signed == [("img_a", 3600)]


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity"):
        ResultLinks(Storage(), capacity=0)
