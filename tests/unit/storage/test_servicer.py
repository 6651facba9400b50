"""StorageService over gRPC on an in-process server: every RPC, its bad input and ownership."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import grpc
import pytest

from gouache.contracts.storage.v1 import storage_pb2
from gouache.db import new_id
from services.storage.domain import CatalogEntry
from services.storage.records import Reservation
from tests.unit.storage.support import (
    PUBLIC_URL,
    Harness,
    image_bytes,
    image_of,
    png_bomb,
    start_harness,
    stop_harness,
)

Metadata = tuple[tuple[str, str], ...]


async def _fails(call: object, code: grpc.StatusCode) -> str:
    """Awaits call, expecting code; returns the status message."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    assert caught.value.code() == code, caught.value.details()
    details = caught.value.details() or ""
    assert details
    return details


async def _add_curated(storage: Harness, seed: int, title: str) -> str:
    view, created = await storage.service.library.add_curated_style(
        image_bytes(seed=seed), CatalogEntry(title=title, artist="Someone"), filename=f"{title}.png"
    )
    assert created
    return view.image.image_id


# --- SignUpload ---------------------------------------------------------------------------


async def test_sign_upload_reserves_an_id_and_signs_a_put_url(storage: Harness) -> None:
    before = datetime.now(UTC)
    response = await storage.stub.SignUpload(
        storage_pb2.SignUploadRequest(filename="photo.jpg", content_type="image/jpeg"),
        metadata=storage.auth(),
        timeout=5,
    )
    assert response.image_id.startswith("img_")
    assert response.file_url == f"{PUBLIC_URL}/v1/files/{response.image_id}"
    assert response.upload_url.startswith(f"{response.file_url}?expires=")
    assert "&sig=" in response.upload_url
    expires_at = response.expires_at.ToDatetime(tzinfo=UTC)
    assert before + timedelta(minutes=14) < expires_at <= before + timedelta(minutes=15, seconds=1)
    reservation = await storage.service.library.store.get_reservation(response.image_id)
    assert reservation is not None
    assert (reservation.owner_id, reservation.kind, reservation.content_type) == (
        "usr_alice",
        "content",
        "image/jpeg",
    )


@pytest.mark.parametrize(
    ("filename", "content_type", "kind", "field"),
    [
        ("photo.gif", "image/gif", "", "content_type"),
        ("photo.png", "", "", "content_type"),
        ("", "image/png", "", "filename"),
        ("a" * 256, "image/png", "", "filename"),
        ("../photo.png", "image/png", "", "filename"),
        ("photo.png", "image/png", "result", "kind"),
        ("photo.png", "image/png", "avatar", "kind"),
    ],
)
async def test_sign_upload_bad_input(
    storage: Harness, filename: str, content_type: str, kind: str, field: str
) -> None:
    message = await _fails(
        storage.stub.SignUpload(
            storage_pb2.SignUploadRequest(filename=filename, content_type=content_type, kind=kind),
            metadata=storage.auth(),
            timeout=5,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert field.replace("_", " ") in message.replace("_", " ") or field in message
    if field == "content_type":
        assert "image/png, image/jpeg, image/webp" in message


async def test_sign_upload_needs_write_scope_and_a_token(storage: Harness) -> None:
    request = storage_pb2.SignUploadRequest(filename="a.png", content_type="image/png")
    read_only = (("authorization", f"Bearer {storage.token(scopes=('read:jobs',))}"),)
    await _fails(
        storage.stub.SignUpload(request, metadata=read_only, timeout=5),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    await _fails(storage.stub.SignUpload(request, timeout=5), grpc.StatusCode.UNAUTHENTICATED)


# --- UploadImage and DownloadImage --------------------------------------------------------


async def test_streamed_upload_and_download_round_trip(storage: Harness) -> None:
    data = image_bytes("webp", size=(64, 48), seed=3)
    image = await storage.upload(
        data, metadata=storage.auth(), chunk_bytes=1000, filename="pic.webp", kind="style"
    )
    assert image.owner_id == "usr_alice"
    assert (image.kind, image.content_type, image.width, image.height) == (
        "style",
        "image/webp",
        64,
        48,
    )
    assert image.size_bytes == len(data)
    assert image.sha256 == hashlib.sha256(data).hexdigest()
    assert image.file_url == f"{PUBLIC_URL}/v1/files/{image.image_id}"
    assert await storage.download(image.image_id, storage.auth()) == data
    fetched = await storage.stub.GetImage(
        storage_pb2.GetImageRequest(image_id=image.image_id), metadata=storage.auth(), timeout=5
    )
    assert image_of(fetched) == image


async def test_download_streams_one_mebibyte_chunks_with_the_image_first(tmp_path: Path) -> None:
    harness = await start_harness(tmp_path)
    try:
        data = image_bytes("png", size=(800, 700), seed=9)
        assert len(data) > 1024 * 1024
        image = await harness.upload(data, metadata=harness.auth(), chunk_bytes=256 * 1024)
        messages = [
            message
            async for message in harness.stub.DownloadImage(
                storage_pb2.DownloadImageRequest(image_id=image.image_id),
                metadata=harness.auth(),
                timeout=10,
            )
        ]
        assert len(messages) == 2
        assert messages[0].image == image
        assert not messages[1].HasField("image")
        assert len(messages[0].chunk) == 1024 * 1024
        assert b"".join(message.chunk for message in messages) == data
    finally:
        await stop_harness(harness)


async def test_upload_detects_the_type_when_none_is_declared(storage: Harness) -> None:
    image = await storage.upload(image_bytes("jpeg"), metadata=storage.auth(), filename="")
    assert image.content_type == "image/jpeg"
    assert image.kind == "content"


async def _raw_upload(storage: Harness, messages: list[storage_pb2.UploadImageRequest]) -> object:
    async def stream() -> AsyncIterator[storage_pb2.UploadImageRequest]:
        for message in messages:
            yield message

    return await storage.stub.UploadImage(stream(), metadata=storage.auth(), timeout=5)


async def test_upload_needs_the_header_first_and_only_once(storage: Harness) -> None:
    header = storage_pb2.UploadImageRequest(
        header=storage_pb2.UploadImageHeader(filename="a.png", content_type="image/png")
    )
    chunk = storage_pb2.UploadImageRequest(chunk=image_bytes())
    for messages in ([], [chunk], [chunk, header], [header, chunk, header]):
        message = await _fails(_raw_upload(storage, messages), grpc.StatusCode.INVALID_ARGUMENT)
        assert "header" in message


@pytest.mark.parametrize(
    ("data", "header", "reason_text"),
    [
        (image_bytes("png"), {"content_type": "image/jpeg"}, "declared"),
        (image_bytes("png"), {"content_type": "image/gif"}, "image/png, image/jpeg, image/webp"),
        (image_bytes("png")[:200], {}, "cut off"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 500, {}, "could not be decoded"),
        (b"GIF89a" + b"\x00" * 100, {}, "GIF"),
        (b"", {}, "empty"),
        (image_bytes("png", size=(8, 8)), {}, "at least 16"),
        (image_bytes("png"), {"kind": "result"}, "only services"),
        (image_bytes("png"), {"metadata_json": "[]"}, "JSON object"),
        (image_bytes("png"), {"filename": "a/b.png"}, "file name"),
    ],
)
async def test_upload_bad_input_stores_nothing(
    storage: Harness, data: bytes, header: dict[str, str], reason_text: str
) -> None:
    message = await _fails(
        storage.upload(data, metadata=storage.auth(), **header), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert reason_text in message
    assert storage.stored_files() == []


async def test_upload_over_the_cap_is_refused_without_storing(storage: Harness) -> None:
    cap = storage.settings.max_upload_bytes
    data = image_bytes("png") + b"\x00" * cap
    message = await _fails(
        storage.upload(data, metadata=storage.auth(), chunk_bytes=64 * 1024),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert message.startswith("image exceeds")
    assert storage.stored_files() == []


async def test_only_services_choose_the_id_and_owner(storage: Harness) -> None:
    for header in ({"image_id": new_id("img")}, {"owner_id": "usr_bob"}):
        await _fails(
            storage.upload(image_bytes(), metadata=storage.auth(), **header),
            grpc.StatusCode.PERMISSION_DENIED,
        )


async def test_services_must_name_a_valid_owner(storage: Harness) -> None:
    for header in ({}, {"owner_id": "system"}, {"owner_id": "usr_b", "image_id": "img_bad"}):
        await _fails(
            storage.upload(image_bytes(), metadata=storage.service_auth(), kind="result", **header),
            grpc.StatusCode.INVALID_ARGUMENT,
        )


async def test_a_retried_result_store_returns_the_same_image(storage: Harness) -> None:
    image_id = new_id("img")
    data = image_bytes("png", seed=5)
    header = {
        "image_id": image_id,
        "owner_id": "usr_alice",
        "kind": "result",
        "metadata_json": '{"job_id": "job_1"}',
    }
    first = await storage.upload(data, metadata=storage.service_auth(), **header)
    again = await storage.upload(data, metadata=storage.service_auth(), **header)
    assert first == again
    assert (first.image_id, first.owner_id, first.kind) == (image_id, "usr_alice", "result")
    assert first.metadata_json == '{"job_id": "job_1"}'
    assert len(storage.stored_files()) == 1
    # The owner reads the result; the file exists once.
    assert await storage.download(image_id, storage.auth("usr_alice")) == data


async def _upload_asking_for_a_url(
    storage: Harness, metadata: tuple[tuple[str, str], ...], ttl: int, **header: str
) -> storage_pb2.UploadImageResponse:
    data = image_bytes("png", seed=9)

    async def messages() -> AsyncIterator[storage_pb2.UploadImageRequest]:
        yield storage_pb2.UploadImageRequest(
            header=storage_pb2.UploadImageHeader(
                filename="r.png", download_url_ttl_seconds=ttl, **header
            )
        )
        yield storage_pb2.UploadImageRequest(chunk=data)

    response: storage_pb2.UploadImageResponse = await storage.stub.UploadImage(
        messages(), metadata=metadata, timeout=10
    )
    return response


async def test_a_service_storing_a_result_may_get_its_download_url_at_once(
    storage: Harness,
) -> None:
    image_id = new_id("img")
    header = {"image_id": image_id, "owner_id": "usr_alice", "kind": "result"}
    response = await _upload_asking_for_a_url(storage, storage.service_auth(), 600, **header)

    assert response.download_url.startswith(f"{PUBLIC_URL}/v1/files/{image_id}?expires=")
    lifetime = response.download_url_expires_at.ToDatetime(tzinfo=UTC) - datetime.now(UTC)
    assert timedelta(seconds=590) < lifetime <= timedelta(seconds=600)
    # The URL works: the signed GET serves the bytes stored.
    async with (
        aiohttp.ClientSession() as client,
        client.get(storage.local(response.download_url)) as got,
    ):
        assert got.status == 200
        assert await got.read() == image_bytes("png", seed=9)


async def test_only_services_may_ask_for_a_download_url_and_within_its_limits(
    storage: Harness,
) -> None:
    await _fails(
        _upload_asking_for_a_url(storage, storage.auth(), 600, kind="content"),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    header = {"image_id": new_id("img"), "owner_id": "usr_alice", "kind": "result"}
    for ttl in (-5, 8 * 24 * 3600):
        message = await _fails(
            _upload_asking_for_a_url(storage, storage.service_auth(), ttl, **header),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert "ttl_seconds" in message
    # Nothing was stored by the refused calls.
    assert storage.stored_files() == []


async def test_a_different_image_under_a_taken_id_is_already_exists(storage: Harness) -> None:
    image_id = new_id("img")
    header = {"image_id": image_id, "owner_id": "usr_alice", "kind": "result"}
    await storage.upload(image_bytes(seed=1), metadata=storage.service_auth(), **header)
    await _fails(
        storage.upload(image_bytes(seed=2), metadata=storage.service_auth(), **header),
        grpc.StatusCode.ALREADY_EXISTS,
    )
    other_owner = {**header, "owner_id": "usr_bob"}
    await _fails(
        storage.upload(image_bytes(seed=1), metadata=storage.service_auth(), **other_owner),
        grpc.StatusCode.ALREADY_EXISTS,
    )
    assert len(storage.stored_files()) == 1


async def test_a_service_cannot_take_an_id_reserved_by_a_signed_upload(storage: Harness) -> None:
    ticket = await storage.stub.SignUpload(
        storage_pb2.SignUploadRequest(filename="a.png", content_type="image/png"),
        metadata=storage.auth(),
        timeout=5,
    )
    await _fails(
        storage.upload(
            image_bytes(),
            metadata=storage.service_auth(),
            image_id=ticket.image_id,
            owner_id="usr_mallory",
            kind="result",
        ),
        grpc.StatusCode.ALREADY_EXISTS,
    )


# --- ownership ----------------------------------------------------------------------------


async def test_another_users_image_is_not_found_everywhere(storage: Harness) -> None:
    image = await storage.upload(image_bytes(), metadata=storage.auth("usr_alice"))
    bob = storage.auth("usr_bob")
    request_id = image.image_id
    calls = [
        storage.stub.GetImage(
            storage_pb2.GetImageRequest(image_id=request_id), metadata=bob, timeout=5
        ),
        storage.download(request_id, bob),
        storage.stub.SignDownload(
            storage_pb2.SignDownloadRequest(image_id=request_id), metadata=bob, timeout=5
        ),
        storage.stub.ResolveImageUrl(
            storage_pb2.ResolveImageUrlRequest(url=image.file_url), metadata=bob, timeout=5
        ),
    ]
    for call in calls:
        message = await _fails(call, grpc.StatusCode.NOT_FOUND)
        assert request_id in message
    # Exactly what a missing image answers, so ids cannot be probed.
    missing = new_id("img")
    await _fails(
        storage.stub.GetImage(
            storage_pb2.GetImageRequest(image_id=missing), metadata=bob, timeout=5
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    # Services read every image.
    assert await storage.download(request_id, storage.service_auth()) == image_bytes()


async def test_get_image_bad_ids(storage: Harness) -> None:
    for image_id in ("", "img_x", "job_01ABCDEFGHJKMNPQRSTVWXYZ01"):
        await _fails(
            storage.stub.GetImage(
                storage_pb2.GetImageRequest(image_id=image_id), metadata=storage.auth(), timeout=5
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
    await _fails(storage.download("img_x", storage.auth()), grpc.StatusCode.INVALID_ARGUMENT)


async def test_curated_styles_are_readable_by_everyone(storage: Harness) -> None:
    image_id = await _add_curated(storage, 7, "Waves")
    data = await storage.download(image_id, storage.auth("usr_anyone"))
    assert data == image_bytes(seed=7)
    got = await storage.stub.GetImage(
        storage_pb2.GetImageRequest(image_id=image_id), metadata=storage.auth("usr_bob"), timeout=5
    )
    assert image_of(got).owner_id == "system"


# --- SignDownload -------------------------------------------------------------------------


async def test_sign_download_ttl(storage: Harness) -> None:
    image = await storage.upload(image_bytes(), metadata=storage.auth())
    now = time.time()
    default = await storage.stub.SignDownload(
        storage_pb2.SignDownloadRequest(image_id=image.image_id), metadata=storage.auth(), timeout=5
    )
    assert default.url.startswith(f"{image.file_url}?expires=")
    assert abs(default.expires_at.seconds - (now + 3600)) <= 2
    week = await storage.stub.SignDownload(
        storage_pb2.SignDownloadRequest(image_id=image.image_id, ttl_seconds=7 * 24 * 3600),
        metadata=storage.auth(),
        timeout=5,
    )
    assert abs(week.expires_at.seconds - (now + 7 * 24 * 3600)) <= 2
    for ttl in (-1, 7 * 24 * 3600 + 1):
        message = await _fails(
            storage.stub.SignDownload(
                storage_pb2.SignDownloadRequest(image_id=image.image_id, ttl_seconds=ttl),
                metadata=storage.auth(),
                timeout=5,
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert "ttl_seconds" in message


# --- ResolveImageUrl ----------------------------------------------------------------------


async def _resolve(
    storage: Harness, url: str, metadata: Metadata, owner_id: str = ""
) -> storage_pb2.Image:
    response = await storage.stub.ResolveImageUrl(
        storage_pb2.ResolveImageUrlRequest(url=url, owner_id=owner_id), metadata=metadata, timeout=5
    )
    return response.image


async def test_resolve_accepts_file_urls_on_any_host_and_bare_ids(storage: Harness) -> None:
    image = await storage.upload(image_bytes(), metadata=storage.auth())
    for url in (
        image.file_url,
        f"http://localhost:8080/v1/files/{image.image_id}",
        f"{image.file_url}?expires=1&sig=whatever",
        image.image_id,
    ):
        assert await _resolve(storage, url, storage.auth()) == image


async def test_services_resolve_for_the_owner_they_name(storage: Harness) -> None:
    image = await storage.upload(image_bytes(), metadata=storage.auth("usr_alice"))
    service = storage.service_auth()
    assert await _resolve(storage, image.file_url, service, owner_id="usr_alice") == image
    assert await _resolve(storage, image.file_url, service) == image
    await _fails(
        _resolve(storage, image.file_url, service, owner_id="usr_bob"), grpc.StatusCode.NOT_FOUND
    )


async def test_users_cannot_resolve_for_someone_else(storage: Harness) -> None:
    image = await storage.upload(image_bytes(), metadata=storage.auth("usr_alice"))
    assert await _resolve(storage, image.file_url, storage.auth(), owner_id="usr_alice") == image
    await _fails(
        _resolve(storage, image.file_url, storage.auth("usr_bob"), owner_id="usr_alice"),
        grpc.StatusCode.PERMISSION_DENIED,
    )


async def test_resolving_an_unfinished_upload_says_to_finish_it(storage: Harness) -> None:
    ticket = await storage.stub.SignUpload(
        storage_pb2.SignUploadRequest(filename="a.png", content_type="image/png"),
        metadata=storage.auth(),
        timeout=5,
    )
    message = await _fails(
        _resolve(storage, ticket.file_url, storage.service_auth(), owner_id="usr_alice"),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert message == (
        f"upload {ticket.image_id} has not finished: PUT the image to its upload_url first"
    )
    # Someone else's reservation is just not found.
    await _fails(
        _resolve(storage, ticket.file_url, storage.auth("usr_bob")), grpc.StatusCode.NOT_FOUND
    )


async def test_resolving_an_expired_upload_says_to_start_again(storage: Harness) -> None:
    image_id = new_id("img")
    past = datetime.now(UTC) - timedelta(minutes=1)
    await storage.service.library.store.add_reservation(
        Reservation(
            image_id=image_id,
            owner_id="usr_alice",
            kind="content",
            content_type="image/png",
            filename="a.png",
            expires_at=past,
            created_at=past - timedelta(minutes=15),
        )
    )
    message = await _fails(
        _resolve(storage, image_id, storage.auth()), grpc.StatusCode.FAILED_PRECONDITION
    )
    assert "expired" in message
    assert "SignUpload" in message


async def test_curated_styles_resolve_for_everyone(storage: Harness) -> None:
    image_id = await _add_curated(storage, 8, "Mosaic")
    assert (await _resolve(storage, image_id, storage.auth("usr_bob"))).owner_id == "system"
    service = storage.service_auth()
    assert (await _resolve(storage, image_id, service, owner_id="usr_carol")).image_id == image_id


@pytest.mark.parametrize(
    "url",
    ["", "ftp://x/v1/files/img_01", "https://edge.example/v1/jobs/abc", "not a url", "img_123"],
)
async def test_resolve_bad_urls(storage: Harness, url: str) -> None:
    await _fails(_resolve(storage, url, storage.auth()), grpc.StatusCode.INVALID_ARGUMENT)


async def test_resolve_unknown_image(storage: Harness) -> None:
    await _fails(_resolve(storage, new_id("img"), storage.auth()), grpc.StatusCode.NOT_FOUND)


# --- ListStyles ---------------------------------------------------------------------------


async def _list(
    storage: Harness,
    metadata: Metadata,
    curated: bool | None = None,
    page_size: int = 0,
    page_token: str = "",
) -> storage_pb2.ListStylesResponse:
    request = storage_pb2.ListStylesRequest(page_size=page_size, page_token=page_token)
    if curated is not None:
        request.curated = curated
    return await storage.stub.ListStyles(request, metadata=metadata, timeout=5)


async def test_list_styles_filters_and_pages(storage: Harness) -> None:
    catalog = [await _add_curated(storage, 100 + i, f"Catalog {i}") for i in range(3)]
    alices = [
        (
            await storage.upload(
                image_bytes(seed=200 + i),
                metadata=storage.auth(),
                kind="style",
                filename=f"mine_{i}.png",
            )
        ).image_id
        for i in range(2)
    ]
    await storage.upload(image_bytes(seed=300), metadata=storage.auth("usr_bob"), kind="style")
    await storage.upload(image_bytes(seed=301), metadata=storage.auth(), kind="content")

    def ids(response: storage_pb2.ListStylesResponse) -> list[str]:
        return [style.file_url.rsplit("/", 1)[1] for style in response.styles]

    only_catalog = await _list(storage, storage.auth(), curated=True)
    assert ids(only_catalog) == catalog
    assert all(style.curated for style in only_catalog.styles)
    assert only_catalog.styles[0].title == "Catalog 0"
    assert only_catalog.styles[0].artist == "Someone"
    assert (only_catalog.styles[0].width, only_catalog.styles[0].height) == (32, 24)
    own = await _list(storage, storage.auth(), curated=False)
    assert ids(own) == alices
    assert [style.title for style in own.styles] == ["Mine 0", "Mine 1"]
    assert not any(style.curated for style in own.styles)

    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await _list(storage, storage.auth(), page_size=2, page_token=token)
        pages += 1
        seen += ids(page)
        token = page.next_page_token
        if not token:
            break
    assert seen == catalog + alices
    assert pages == 3


async def test_list_styles_bad_input(storage: Harness) -> None:
    await _fails(_list(storage, storage.auth(), page_size=101), grpc.StatusCode.INVALID_ARGUMENT)
    await _fails(_list(storage, storage.auth(), page_size=-1), grpc.StatusCode.INVALID_ARGUMENT)
    message = await _fails(
        _list(storage, storage.auth(), page_token="bogus"), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert "page_token" in message
    for i in range(2):
        await _add_curated(storage, 400 + i, f"S{i}")
    first = await _list(storage, storage.auth(), curated=True, page_size=1)
    assert first.next_page_token
    await _fails(
        _list(storage, storage.auth(), curated=False, page_token=first.next_page_token),
        grpc.StatusCode.INVALID_ARGUMENT,
    )


async def test_list_styles_needs_read_scope(storage: Harness) -> None:
    no_read = (("authorization", f"Bearer {storage.token(scopes=('write:jobs',))}"),)
    await _fails(_list(storage, no_read), grpc.StatusCode.PERMISSION_DENIED)


async def test_a_service_result_gets_the_header_checks(storage: Harness) -> None:
    """A worker's result skips the pixel decode, not the checks its header allows."""
    header = {"owner_id": "usr_alice", "kind": "result"}
    for data, reason in (
        (b"GIF89a" + b"\x00" * 64, "not supported"),
        (png_bomb(), "pixels"),
        (image_bytes("png", size=(8, 8)), "at least 16 pixels"),
    ):
        message = await _fails(
            storage.upload(data, metadata=storage.service_auth(), image_id=new_id("img"), **header),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert reason in message, message
    assert storage.stored_files() == []
    stored = await storage.upload(
        image_bytes("png", size=(40, 30)), metadata=storage.service_auth(), **header
    )
    assert (stored.width, stored.height, stored.content_type) == (40, 30, "image/png")


async def test_a_users_upload_is_still_decoded_in_full(storage: Harness) -> None:
    """A cut-off PNG keeps a valid header: only the full decode finds it."""
    data = image_bytes("png", size=(64, 64), seed=9)
    cut = data[: len(data) // 2]
    message = await _fails(
        storage.upload(cut, metadata=storage.auth()), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert "cut off" in message or "could not be decoded" in message
    assert storage.stored_files() == []
