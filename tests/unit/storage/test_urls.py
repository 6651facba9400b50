"""Signed URLs (signature, method binding, expiry) and parsing of file URLs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from gouache.db import new_id
from gouache.runtime.errors import InvalidArgument, PermissionDenied
from services.storage.urls import UrlSigner, is_image_id, parse_image_ref

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
IMAGE_ID = new_id("img")


@pytest.fixture
def signer() -> UrlSigner:
    return UrlSigner(b"k" * 32, "https://edge.example/")


def _query(url: str) -> tuple[str, str]:
    query = parse_qs(urlsplit(url).query)
    return query["expires"][0], query["sig"][0]


def test_signed_url_has_the_file_path_expiry_and_signature(signer: UrlSigner) -> None:
    signed = signer.sign("PUT", IMAGE_ID, NOW + timedelta(minutes=15))
    parts = urlsplit(signed.url)
    assert f"{parts.scheme}://{parts.netloc}" == "https://edge.example"
    assert parts.path == f"/v1/files/{IMAGE_ID}"
    expires, sig = _query(signed.url)
    assert int(expires) == int((NOW + timedelta(minutes=15)).timestamp())
    assert signed.expires_at == NOW + timedelta(minutes=15)
    signer.verify("PUT", IMAGE_ID, expires, sig, now=NOW)


def test_expiry_is_rounded_down_to_whole_seconds(signer: UrlSigner) -> None:
    signed = signer.sign("GET", IMAGE_ID, NOW + timedelta(seconds=10, milliseconds=900))
    assert signed.expires_at == NOW + timedelta(seconds=10)


def test_expired_url_is_refused_with_its_own_reason(signer: UrlSigner) -> None:
    expires, sig = _query(signer.sign("PUT", IMAGE_ID, NOW + timedelta(seconds=5)).url)
    signer.verify("PUT", IMAGE_ID, expires, sig, now=NOW + timedelta(seconds=4))
    for later in (timedelta(seconds=5), timedelta(days=1)):
        with pytest.raises(PermissionDenied) as caught:
            signer.verify("PUT", IMAGE_ID, expires, sig, now=NOW + later)
        assert caught.value.reason == "expired_signature"
        assert "expired" in caught.value.message


@pytest.mark.parametrize(
    "tamper",
    [
        "other_method",
        "other_image",
        "later_expiry",
        "other_key",
        "flipped_sig",
        "no_sig",
        "no_expiry",
    ],
)
def test_tampered_urls_are_refused(signer: UrlSigner, tamper: str) -> None:
    expires, sig = _query(signer.sign("PUT", IMAGE_ID, NOW + timedelta(minutes=5)).url)
    method, image_id = "PUT", IMAGE_ID
    check_expires: str | None = expires
    check_sig: str | None = sig
    if tamper == "other_method":
        method = "GET"
    elif tamper == "other_image":
        image_id = new_id("img")
    elif tamper == "later_expiry":
        check_expires = str(int(expires) + 3600)
    elif tamper == "other_key":
        check_sig = _query(
            UrlSigner(b"x" * 32, "https://edge.example")
            .sign("PUT", IMAGE_ID, NOW + timedelta(minutes=5))
            .url
        )[1]
    elif tamper == "flipped_sig":
        check_sig = ("A" if sig[0] != "A" else "B") + sig[1:]
    elif tamper == "no_sig":
        check_sig = None
    else:
        check_expires = None
    with pytest.raises(PermissionDenied) as caught:
        signer.verify(method, image_id, check_expires, check_sig, now=NOW)
    assert caught.value.reason == "bad_signature"


@pytest.mark.parametrize("expires", ["soon", "-5", "1.5", "²", "9" * 13, ""])
def test_malformed_expiry_is_refused(signer: UrlSigner, expires: str) -> None:
    with pytest.raises(PermissionDenied):
        signer.verify("GET", IMAGE_ID, expires, "abc", now=NOW)


def test_signature_does_not_depend_on_the_public_host() -> None:
    one = UrlSigner(b"k" * 32, "https://edge.example")
    other = UrlSigner(b"k" * 32, "http://127.0.0.1:8081")
    assert one.signature("GET", IMAGE_ID, 100) == other.signature("GET", IMAGE_ID, 100)


def test_empty_key_is_refused() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        UrlSigner(b"", "https://edge.example")


@pytest.mark.parametrize(
    "ref",
    [
        IMAGE_ID,
        f"  {IMAGE_ID} ",
        f"https://edge.example/v1/files/{IMAGE_ID}",
        f"http://127.0.0.1:8080/v1/files/{IMAGE_ID}",
        f"http://storage.internal:8081/v1/files/{IMAGE_ID}/",
        f"https://api.gouache.dev/v1/files/{IMAGE_ID}?expires=1&sig=abc",
        f"HTTPS://Edge.Example/v1/files/{IMAGE_ID}#fragment",
    ],
)
def test_file_urls_and_bare_ids_name_the_image(ref: str) -> None:
    assert parse_image_ref(ref) == IMAGE_ID


@pytest.mark.parametrize(
    "ref",
    [
        "",
        "   ",
        "img_short",
        "ftp://edge.example/v1/files/" + IMAGE_ID,
        "file:///v1/files/" + IMAGE_ID,
        "https:///v1/files/" + IMAGE_ID,
        "https://edge.example/v1/images/" + IMAGE_ID,
        "https://edge.example/v1/files/" + IMAGE_ID + "/extra",
        "https://edge.example/v1/files/../" + IMAGE_ID,
        "https://edge.example/v1/files/not-an-id",
        "https://edge.example/styles/mosaic.jpg",
        "/v1/files/" + IMAGE_ID,
    ],
)
def test_other_references_are_invalid(ref: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_image_ref(ref)
    assert caught.value.field == "url"
    assert caught.value.message


def test_image_id_shape() -> None:
    assert is_image_id(new_id("img"))
    assert not is_image_id(new_id("job"))
    assert not is_image_id(IMAGE_ID.lower())
    assert not is_image_id(IMAGE_ID + "0")
