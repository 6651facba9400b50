"""Storage rules without a network: input validation, limits, page tokens, access."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gouache.db import new_id
from gouache.runtime.context import Principal
from gouache.runtime.errors import InvalidArgument
from services.storage.domain import (
    ALLOWED_CONTENT_TYPES,
    MAX_PAGE_SIZE,
    blob_key,
    decode_page_token,
    download_ttl,
    encode_page_token,
    may_read,
    normalize_content_type,
    page_size_or_default,
    read_capped,
    title_from_filename,
    validate_filename,
    validate_kind,
    validate_metadata_json,
    validate_owner_id,
)
from services.storage.records import SYSTEM_OWNER, ImageRecord, StyleCursor
from services.storage.settings import StorageSettings

ALICE = Principal(user_id="usr_alice", role="user", scopes=frozenset({"read:jobs"}))
BOB = Principal(user_id="usr_bob", role="user", scopes=frozenset({"read:jobs"}))
SERVICE = Principal(user_id="usr_tiling", role="service", scopes=frozenset({"internal"}))


def _image(owner: str) -> ImageRecord:
    return ImageRecord(
        image_id=new_id("img"),
        owner_id=owner,
        kind="style",
        content_type="image/png",
        format="png",
        width=10,
        height=10,
        size_bytes=100,
        sha256="0" * 64,
        blob_key="images/xx/key.png",
        created_at=datetime.now(UTC),
    )


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("image/png", "image/png"),
        ("IMAGE/JPEG", "image/jpeg"),
        (" image/webp ; q=1", "image/webp"),
    ],
)
def test_allowed_content_types(given: str, expected: str) -> None:
    assert normalize_content_type(given) == expected


@pytest.mark.parametrize("given", ["", "image/gif", "image/jpg", "text/plain", "image/svg+xml"])
def test_other_content_types_are_refused_with_the_allowed_list(given: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        normalize_content_type(given)
    assert caught.value.field == "content_type"
    for allowed in ALLOWED_CONTENT_TYPES:
        assert allowed in caught.value.message


@pytest.mark.parametrize("name", ["photo.jpg", "x", "été 2024 (1).png", "a" * 255])
def test_plain_file_names_pass(name: str) -> None:
    assert validate_filename(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "   ", "a" * 256, "dir/photo.jpg", "..\\photo.jpg", "/etc/passwd", "a\x00b", "..", "a\nb"],
)
def test_bad_file_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        validate_filename(name)
    assert caught.value.field == "filename"


def test_kind_defaults_to_content_and_result_is_for_services() -> None:
    assert validate_kind("", allow_result=False) == "content"
    assert validate_kind("Style", allow_result=False) == "style"
    assert validate_kind("result", allow_result=True) == "result"
    with pytest.raises(InvalidArgument, match="only services"):
        validate_kind("result", allow_result=False)
    with pytest.raises(InvalidArgument):
        validate_kind("thumbnail", allow_result=True)


def test_owner_ids_for_service_uploads() -> None:
    assert validate_owner_id("usr_01ABC") == "usr_01ABC"
    for bad in ("", "system", "usr alice", "../x", "x" * 129):
        with pytest.raises(InvalidArgument):
            validate_owner_id(bad)


def test_metadata_json_must_be_a_small_object() -> None:
    assert validate_metadata_json("") == ""
    assert validate_metadata_json('{"job_id": "job_1"}') == '{"job_id": "job_1"}'
    for bad in ("[1, 2]", "not json", '"text"', '{"a": "' + "x" * 20_000 + '"}'):
        with pytest.raises(InvalidArgument) as caught:
            validate_metadata_json(bad)
        assert caught.value.field == "metadata_json"


def test_download_ttl_limits() -> None:
    assert download_ttl(0) == timedelta(hours=1)
    assert download_ttl(1) == timedelta(seconds=1)
    assert download_ttl(7 * 24 * 3600) == timedelta(days=7)
    for bad in (-1, 7 * 24 * 3600 + 1):
        with pytest.raises(InvalidArgument) as caught:
            download_ttl(bad)
        assert caught.value.field == "ttl_seconds"


def test_page_size_limits() -> None:
    assert page_size_or_default(0) == 50
    assert page_size_or_default(1) == 1
    assert page_size_or_default(MAX_PAGE_SIZE) == MAX_PAGE_SIZE
    for bad in (-1, MAX_PAGE_SIZE + 1):
        with pytest.raises(InvalidArgument) as caught:
            page_size_or_default(bad)
        assert caught.value.field == "page_size"


def test_page_tokens_round_trip_and_are_tied_to_their_listing() -> None:
    cursor = StyleCursor(curated=True, style_id=new_id("sty"))
    token = encode_page_token("all", cursor)
    assert decode_page_token(token, "all") == cursor
    assert decode_page_token("", "all") is None
    with pytest.raises(InvalidArgument):
        decode_page_token(token, "catalog")


@pytest.mark.parametrize("token", ["garbage!", "e30", "bnVsbA", "eyJ2IjoyfQ", "%%%"])
def test_bad_page_tokens_are_invalid(token: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        decode_page_token(token, "all")
    assert caught.value.field == "page_token"


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_read_capped_joins_chunks_up_to_the_limit() -> None:
    assert await read_capped(_chunks(b"ab", b"cd"), 4) == b"abcd"


async def test_read_capped_stops_reading_past_the_limit() -> None:
    consumed = []

    async def chunks() -> AsyncIterator[bytes]:
        for index in range(100):
            consumed.append(index)
            yield b"x" * 10

    with pytest.raises(InvalidArgument) as caught:
        await read_capped(chunks(), 25)
    assert caught.value.reason == "too_large"
    assert len(consumed) == 3


def test_the_size_limit_message_names_the_product_limit() -> None:
    settings = StorageSettings(url_signing_key="k" * 32)
    assert settings.max_upload_bytes == 25 * 1024 * 1024
    assert settings.image_limits().max_bytes == 25 * 1024 * 1024


async def test_too_large_message_says_25_mb() -> None:
    with pytest.raises(InvalidArgument, match="image exceeds 25 MB"):
        await read_capped(_chunks(b"x" * (25 * 1024 * 1024 + 1)), 25 * 1024 * 1024)


def test_owners_services_and_everyone_for_curated() -> None:
    alices = _image("usr_alice")
    curated = _image(SYSTEM_OWNER)
    assert may_read(ALICE, alices)
    assert not may_read(BOB, alices)
    assert may_read(SERVICE, alices)
    assert may_read(BOB, curated)


def test_blob_keys_fan_out_and_name_the_content() -> None:
    image_id = new_id("img")
    key = blob_key(image_id, "ab" * 32, "jpeg")
    assert key == f"images/{image_id[-2:]}/{image_id}-{'ab' * 8}.jpg"
    assert blob_key(image_id, "cd" * 32, "jpeg") != key


@pytest.mark.parametrize(
    ("filename", "title"),
    [
        ("vangogh_starry_night.jpg", "Vangogh Starry Night"),
        ("my-style.png", "My Style"),
        ("plain", "Plain"),
    ],
)
def test_titles_from_file_names(filename: str, title: str) -> None:
    assert title_from_filename(filename) == title


def test_settings_derive_paths_from_the_state_dir(tmp_path: Path) -> None:
    settings = StorageSettings(state_dir=tmp_path, url_signing_key="k" * 32)
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path}/storage.db"
    assert settings.resolved_blob_root() == tmp_path / "blobs"
    assert settings.sqlite_path() == tmp_path / "storage.db"


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GOUACHE_STORAGE_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("GOUACHE_STORAGE_HTTP_PORT", "9999")
    monkeypatch.setenv("GOUACHE_STORAGE_PUBLIC_URL", "https://api.example/")
    monkeypatch.setenv("GOUACHE_STORAGE_URL_SIGNING_KEY", "s" * 40)
    settings = StorageSettings()
    assert settings.http_port == 9999
    assert settings.public_url == "https://api.example"
    assert settings.signing_key() == b"s" * 40
    assert settings.database_url.endswith(f"{tmp_path}/storage.db")


def test_a_missing_or_short_signing_key_is_refused() -> None:
    for key in ("", "short"):
        with pytest.raises(ValueError, match="GOUACHE_STORAGE_URL_SIGNING_KEY"):
            StorageSettings(url_signing_key=key).signing_key()
