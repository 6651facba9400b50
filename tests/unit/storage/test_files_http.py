"""The file server over real HTTP (httpx against aiohttp): signed PUT and GET, bearer GET."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from gouache.blobs import LocalBlobStore
from gouache.contracts.storage.v1 import storage_pb2
from gouache.db import new_id
from tests.unit.storage.conftest import TEST_UPLOAD_CAP
from tests.unit.storage.support import Harness, image_bytes, png_bomb

PERMISSION_DENIED = 7


async def _sign(
    storage: Harness, content_type: str = "image/png", kind: str = "", user: str = "usr_alice"
) -> storage_pb2.SignUploadResponse:
    return await storage.stub.SignUpload(
        storage_pb2.SignUploadRequest(filename="photo.png", content_type=content_type, kind=kind),
        metadata=storage.auth(user),
        timeout=5,
    )


async def _put(
    http: httpx.AsyncClient, storage: Harness, url: str, data: bytes, content_type: str
) -> httpx.Response:
    return await http.put(storage.local(url), content=data, headers={"Content-Type": content_type})


async def _assert_nothing_stored(storage: Harness, image_id: str) -> None:
    assert await storage.service.library.store.get_image(image_id) is None
    assert storage.stored_files() == []
    blobs = storage.service.library.blobs
    assert isinstance(blobs, LocalBlobStore)
    assert blobs.temp_files() == []


def _error(response: httpx.Response, status: int, code: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["code"] == code
    assert body["message"]
    return str(body["message"])


# --- PUT ----------------------------------------------------------------------------------


async def test_signed_put_stores_the_image(storage: Harness, http: httpx.AsyncClient) -> None:
    ticket = await _sign(storage, "image/jpeg", kind="style")
    data = image_bytes("jpeg", size=(40, 30), seed=1)
    response = await _put(http, storage, ticket.upload_url, data, "image/jpeg")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["image_id"] == ticket.image_id
    assert body["owner_id"] == "usr_alice"
    assert body["kind"] == "style"
    assert body["content_type"] == "image/jpeg"
    assert (body["width"], body["height"]) == (40, 30)
    assert int(body["size_bytes"]) == len(data)
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["file_url"] == ticket.file_url
    assert response.headers["location"] == ticket.file_url
    # The uploaded image is now usable by its owner, and listed among their styles.
    resolved = await storage.stub.ResolveImageUrl(
        storage_pb2.ResolveImageUrlRequest(url=ticket.file_url), metadata=storage.auth(), timeout=5
    )
    assert resolved.image.image_id == ticket.image_id
    styles = await storage.stub.ListStyles(
        storage_pb2.ListStylesRequest(curated=False), metadata=storage.auth(), timeout=5
    )
    assert [style.title for style in styles.styles] == ["Photo"]
    assert await storage.download(ticket.image_id, storage.auth()) == data


async def test_a_second_put_is_a_conflict(storage: Harness, http: httpx.AsyncClient) -> None:
    ticket = await _sign(storage)
    data = image_bytes(seed=2)
    assert (await _put(http, storage, ticket.upload_url, data, "image/png")).status_code == 201
    again = await _put(http, storage, ticket.upload_url, image_bytes(seed=3), "image/png")
    assert "already been uploaded" in _error(again, 409, 6)
    assert await storage.download(ticket.image_id, storage.auth()) == data
    assert len(storage.stored_files()) == 1


async def test_concurrent_puts_store_one_image(storage: Harness, http: httpx.AsyncClient) -> None:
    ticket = await _sign(storage)
    responses = await asyncio.gather(
        *(
            _put(http, storage, ticket.upload_url, image_bytes(seed=s), "image/png")
            for s in range(4)
        )
    )
    assert sorted(response.status_code for response in responses) == [201, 409, 409, 409]
    assert len(storage.stored_files()) == 1


async def test_expired_upload_url_is_forbidden(storage: Harness, http: httpx.AsyncClient) -> None:
    ticket = await _sign(storage)
    signer = storage.service.library.signer
    expires = int(time.time()) - 1
    url = f"{ticket.file_url}?expires={expires}&sig={signer.signature('PUT', ticket.image_id, expires)}"
    response = await _put(http, storage, url, image_bytes(), "image/png")
    assert "expired" in _error(response, 403, PERMISSION_DENIED)
    await _assert_nothing_stored(storage, ticket.image_id)


@pytest.mark.parametrize(
    "forgery", ["bad_sig", "later_expiry", "no_query", "download_sig", "other_id"]
)
async def test_forged_upload_urls_are_forbidden(
    storage: Harness, http: httpx.AsyncClient, forgery: str
) -> None:
    ticket = await _sign(storage)
    query = parse_qs(urlsplit(ticket.upload_url).query)
    expires, sig = query["expires"][0], query["sig"][0]
    signer = storage.service.library.signer
    url = {
        "bad_sig": f"{ticket.file_url}?expires={expires}&sig={sig[:-2]}AA",
        "later_expiry": f"{ticket.file_url}?expires={int(expires) + 3600}&sig={sig}",
        "no_query": ticket.file_url,
        "download_sig": f"{ticket.file_url}?expires={expires}&sig="
        + signer.signature("GET", ticket.image_id, int(expires)),
        "other_id": ticket.upload_url.replace(ticket.image_id, (await _sign(storage)).image_id),
    }[forgery]
    response = await _put(http, storage, url, image_bytes(), "image/png")
    _error(response, 403, PERMISSION_DENIED)
    await _assert_nothing_stored(storage, ticket.image_id)


async def test_content_type_must_match_the_reservation(
    storage: Harness, http: httpx.AsyncClient
) -> None:
    ticket = await _sign(storage, "image/png")
    for content_type in ("image/jpeg", "application/octet-stream", ""):
        response = await _put(http, storage, ticket.upload_url, image_bytes(), content_type)
        assert "Content-Type must be image/png" in _error(response, 415, 3)
    await _assert_nothing_stored(storage, ticket.image_id)
    ok = await _put(http, storage, ticket.upload_url, image_bytes(), "Image/PNG; charset=binary")
    assert ok.status_code == 201


async def test_bytes_of_another_format_are_refused(
    storage: Harness, http: httpx.AsyncClient
) -> None:
    ticket = await _sign(storage, "image/png")
    response = await _put(http, storage, ticket.upload_url, image_bytes("jpeg"), "image/png")
    assert "image/jpeg" in _error(response, 415, 3)
    await _assert_nothing_stored(storage, ticket.image_id)


@pytest.mark.parametrize(
    ("data", "status", "text"),
    [
        (image_bytes("png", size=(64, 64))[:300], 400, "cut off"),
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, 400, "could not be decoded"),
        (png_bomb(), 400, "megapixels"),
        (b"", 400, "empty"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", 415, "SVG"),
    ],
    ids=["truncated", "corrupt", "decompression_bomb", "empty", "svg"],
)
async def test_bad_images_are_rejected_and_nothing_is_stored(
    storage: Harness, http: httpx.AsyncClient, data: bytes, status: int, text: str
) -> None:
    ticket = await _sign(storage, "image/png")
    response = await _put(http, storage, ticket.upload_url, data, "image/png")
    assert text in _error(response, status, 3)
    await _assert_nothing_stored(storage, ticket.image_id)
    # The reservation survives a rejection: the client may retry with a good file.
    retry = await _put(http, storage, ticket.upload_url, image_bytes(), "image/png")
    assert retry.status_code == 201


async def test_the_decompression_bomb_is_cheap(storage: Harness, http: httpx.AsyncClient) -> None:
    bomb = png_bomb()
    assert len(bomb) < 4096
    ticket = await _sign(storage, "image/png")
    started = time.perf_counter()
    response = await _put(http, storage, ticket.upload_url, bomb, "image/png")
    assert response.status_code == 400
    assert time.perf_counter() - started < 2


async def test_an_oversized_declared_body_is_413(storage: Harness, http: httpx.AsyncClient) -> None:
    ticket = await _sign(storage)
    data = image_bytes() + b"\x00" * TEST_UPLOAD_CAP
    response = await _put(http, storage, ticket.upload_url, data, "image/png")
    assert "image exceeds" in _error(response, 413, 3)
    assert response.headers.get("connection") == "close"
    await _assert_nothing_stored(storage, ticket.image_id)


async def test_an_oversized_streamed_body_is_413(storage: Harness, http: httpx.AsyncClient) -> None:
    """Without a Content-Length (chunked), the server stops taking chunks past the cap."""
    ticket = await _sign(storage)
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        yield image_bytes()
        for _ in range(40):
            sent += 16 * 1024
            yield b"\x00" * (16 * 1024)

    response = await http.put(
        storage.local(ticket.upload_url), content=body(), headers={"Content-Type": "image/png"}
    )
    assert "image exceeds" in _error(response, 413, 3)
    await _assert_nothing_stored(storage, ticket.image_id)


async def test_a_body_cut_off_by_a_disconnect_stores_nothing(
    storage: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """A complete image followed by a disconnect before the declared length is not stored."""
    caplog.set_level(logging.INFO, logger="services.storage.files")
    ticket = await _sign(storage)
    target = storage.local(ticket.upload_url)
    parts = urlsplit(target)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    data = image_bytes()
    writer.write(
        f"PUT {parts.path}?{parts.query} HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
        f"Content-Length: {len(data) + 1000}\r\n\r\n".encode()
        + data
    )
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    del reader
    deadline = time.monotonic() + 5
    while not any(record.getMessage() == "upload cut off" for record in caplog.records):
        assert time.monotonic() < deadline, "the server never noticed the cut-off upload"
        await asyncio.sleep(0.01)
    await _assert_nothing_stored(storage, ticket.image_id)


async def test_unknown_or_malformed_ids(storage: Harness, http: httpx.AsyncClient) -> None:
    unknown = new_id("img")
    signer = storage.service.library.signer
    expires = int(time.time()) + 60
    url = f"/v1/files/{unknown}?expires={expires}&sig={signer.signature('PUT', unknown, expires)}"
    response = await http.put(url, content=image_bytes(), headers={"Content-Type": "image/png"})
    assert "SignUpload" in _error(response, 404, 5)
    response = await http.put("/v1/files/not-an-id", content=b"x")
    _error(response, 404, 5)
    response = await http.get("/v1/other")
    _error(response, 404, 5)


async def test_other_methods_are_405(storage: Harness, http: httpx.AsyncClient) -> None:
    ticket = await _sign(storage)
    for method in ("POST", "DELETE", "PATCH"):
        response = await http.request(method, storage.local(ticket.upload_url))
        _error(response, 405, 12)
        assert response.headers["allow"] == "GET, HEAD, PUT"


# --- GET ----------------------------------------------------------------------------------


async def _stored(storage: Harness, user: str = "usr_alice") -> storage_pb2.Image:
    return await storage.upload(image_bytes("png", seed=11), metadata=storage.auth(user))


async def test_signed_download(storage: Harness, http: httpx.AsyncClient) -> None:
    image = await _stored(storage)
    signed = await storage.stub.SignDownload(
        storage_pb2.SignDownloadRequest(image_id=image.image_id, ttl_seconds=60),
        metadata=storage.auth(),
        timeout=5,
    )
    response = await http.get(storage.local(signed.url))
    assert response.status_code == 200
    assert response.content == image_bytes("png", seed=11)
    assert response.headers["content-type"] == "image/png"
    assert response.headers["etag"] == f'"{image.sha256}"'
    assert int(response.headers["content-length"]) == image.size_bytes
    head = await http.head(storage.local(signed.url))
    assert head.status_code == 200
    assert head.content == b""
    assert int(head.headers["content-length"]) == image.size_bytes
    cached = await http.get(
        storage.local(signed.url), headers={"If-None-Match": f'"{image.sha256}"'}
    )
    assert cached.status_code == 304


async def test_signed_download_refuses_bad_signatures(
    storage: Harness, http: httpx.AsyncClient
) -> None:
    image = await _stored(storage)
    signer = storage.service.library.signer
    past = int(time.time()) - 5
    future = int(time.time()) + 60
    urls = [
        f"{image.file_url}?expires={past}&sig={signer.signature('GET', image.image_id, past)}",
        f"{image.file_url}?expires={future}&sig={signer.signature('PUT', image.image_id, future)}",
        f"{image.file_url}?expires={future}&sig=forged",
        f"{image.file_url}?sig=forged",
    ]
    for url in urls:
        _error(await http.get(storage.local(url)), 403, PERMISSION_DENIED)


async def test_bearer_download_for_the_owner_only(
    storage: Harness, http: httpx.AsyncClient
) -> None:
    image = await _stored(storage)
    path = f"/v1/files/{image.image_id}"

    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    owner = await http.get(path, headers=bearer(storage.token("usr_alice")))
    assert owner.status_code == 200
    assert owner.content == image_bytes("png", seed=11)
    service = await http.get(path, headers=bearer(storage.service_token()))
    assert service.status_code == 200
    _error(await http.get(path, headers=bearer(storage.token("usr_bob"))), 404, 5)
    _error(await http.get(path), 401, 16)
    _error(await http.get(path, headers={"Authorization": "Basic abc"}), 401, 16)
    _error(await http.get(path, headers=bearer("not-a-jwt")), 401, 16)
    expired = storage.signer.token("usr_alice", ttl_s=-60)
    _error(await http.get(path, headers=bearer(expired)), 401, 16)
    no_scope = storage.token("usr_alice", scopes=("write:jobs",))
    _error(await http.get(path, headers=bearer(no_scope)), 403, PERMISSION_DENIED)


async def test_forwarded_headers_grant_nothing(storage: Harness, http: httpx.AsyncClient) -> None:
    image = await _stored(storage)
    response = await http.get(
        f"/v1/files/{image.image_id}",
        headers={
            "X-Forwarded-For": "127.0.0.1",
            "X-Forwarded-User": "usr_alice",
            "X-Envoy-Internal": "true",
            "Host": "edge.example",
        },
    )
    _error(response, 401, 16)


async def test_download_of_a_missing_image(storage: Harness, http: httpx.AsyncClient) -> None:
    missing = new_id("img")
    signer = storage.service.library.signer
    future = int(time.time()) + 60
    url = f"/v1/files/{missing}?expires={future}&sig={signer.signature('GET', missing, future)}"
    _error(await http.get(url), 404, 5)
