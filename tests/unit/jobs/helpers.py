"""Test helpers for the jobs service: storage as an in-memory ImageResolver, error checks."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from gouache.db import new_id
from gouache.runtime.errors import FailedPrecondition, NotFound
from services.jobs.clients import ResolvedImage, ResultExpired

PUBLIC = "http://127.0.0.1:8080/v1/files"


@dataclass
class InMemoryImages:
    """Storage's ResolveImageUrl and SignDownload rules over a dict: owner, curated, pending."""

    images: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    pending: set[str] = field(default_factory=set)
    resolved: list[tuple[str, str]] = field(default_factory=list)
    digests: dict[str, str] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    expired: dict[str, datetime] = field(default_factory=dict)

    def add(self, owner: str | None, *, pending: bool = False, sha256: str | None = None) -> str:
        """A new image of owner (None: curated, usable by all); returns its file URL.

        `sha256` is what storage reports for its bytes (by default one of its own).
        """
        image_id = new_id("img")
        url = f"{PUBLIC}/{image_id}"
        self.images[url] = (image_id, owner)
        self.digests[url] = sha256 or hashlib.sha256(image_id.encode()).hexdigest()
        if pending:
            self.pending.add(url)
        return url

    def add_result(self, owner: str) -> str:
        """A result image a worker stored for owner; returns its id (storage resolves ids)."""
        return self.add(owner).rsplit("/", 1)[-1]

    def delete(self, image_id: str) -> None:
        """Forgets an image, as if it had been deleted from storage."""
        self.images.pop(f"{PUBLIC}/{image_id}", None)

    async def resolve_image(self, url: str, owner_id: str) -> ResolvedImage:
        self.resolved.append((url, owner_id))
        if "/" not in url:  # an image id, which storage resolves like its file URL
            url = f"{PUBLIC}/{url}"
        found = self.images.get(url)
        if found is None or found[1] not in (None, owner_id):
            raise NotFound(f"image {url.rsplit('/', 1)[-1]} not found")
        if url in self.pending:
            raise FailedPrecondition(
                f"upload {found[0]} has not finished: PUT the image to its upload_url first"
            )
        return ResolvedImage(found[0], self.digests[url])

    async def sign_download(self, image_id: str, ttl_s: int) -> str:
        if image_id in self.expired:
            raise ResultExpired(f"image {image_id} expired", self.expired[image_id])
        return f"{PUBLIC}/{image_id}?expires={ttl_s}&sig=test"

    async def delete_image(self, image_id: str) -> None:
        """Storage's DeleteImage as jobs calls it: NOT_FOUND when already gone."""
        if f"{PUBLIC}/{image_id}" not in self.images:
            raise NotFound(f"image {image_id} not found")
        self.deleted.append(image_id)
        self.delete(image_id)

    def expire(self, image_id: str, at: datetime) -> None:
        """The image's retention period ended at `at`, as storage's sweep would have it."""
        self.expired[image_id] = at
        self.delete(image_id)


def error_field(error: grpc.aio.AioRpcError) -> str | None:
    """The field named in an error's ErrorInfo metadata."""
    raw = dict(error.trailing_metadata() or ()).get("grpc-status-details-bin")
    if raw is None:
        return None
    status = status_pb2.Status.FromString(raw)
    info = error_details_pb2.ErrorInfo()
    status.details[0].Unpack(info)
    field_name: str | None = info.metadata.get("field")
    return field_name


async def expect_error(
    call: Any, code: grpc.StatusCode, *, field: str | None = None, contains: Sequence[str] = ()
) -> grpc.aio.AioRpcError:
    """Awaits call and checks the status it fails with."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    error = caught.value
    assert error.code() == code, error.details()
    if field is not None:
        assert error_field(error) == field
    for text in contains:
        assert text in (error.details() or ""), error.details()
    return error
