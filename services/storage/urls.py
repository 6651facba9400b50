"""Signed file URLs (HMAC-SHA256 over method, image id and expiry) and parsing of file URLs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlencode, urlsplit

from gouache.runtime.errors import InvalidArgument, PermissionDenied

FILES_PATH = "/v1/files/"
IMAGE_ID = re.compile(r"img_[0-9A-HJKMNP-TV-Z]{26}")
STYLE_ID = re.compile(r"sty_[0-9A-HJKMNP-TV-Z]{26}")
_PATH = re.compile(r"/v1/files/(?P<image_id>[^/]+)/?")


@dataclass(frozen=True)
class SignedUrl:
    url: str
    expires_at: datetime


class UrlSigner:
    """Signs and checks `{public_url}/v1/files/{image_id}?expires=<unix>&sig=<hmac>` URLs.

    The signature covers the HTTP method, so an upload URL cannot be used to download and
    a download URL cannot be used to upload.
    """

    def __init__(self, key: bytes, public_url: str) -> None:
        if not key:
            raise ValueError("the URL signing key must not be empty")
        self._key = key
        self.public_url = public_url.rstrip("/")

    def file_url(self, image_id: str) -> str:
        """The unsigned URL that names an image (content_url, style_urls, file_url)."""
        return f"{self.public_url}{FILES_PATH}{image_id}"

    def signature(self, method: str, image_id: str, expires: int) -> str:
        """base64url (unpadded) HMAC-SHA256 of "METHOD\\nimage_id\\nexpires"."""
        message = f"{method.upper()}\n{image_id}\n{expires}".encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def sign(self, method: str, image_id: str, expires_at: datetime) -> SignedUrl:
        """A URL for method on image_id, valid until expires_at (rounded down to a second)."""
        expires = int(expires_at.timestamp())
        query = urlencode({"expires": expires, "sig": self.signature(method, image_id, expires)})
        return SignedUrl(
            url=f"{self.file_url(image_id)}?{query}",
            expires_at=datetime.fromtimestamp(expires, tz=UTC),
        )

    def verify(
        self, method: str, image_id: str, expires: str | None, sig: str | None, *, now: datetime
    ) -> None:
        """Raises PermissionDenied unless sig is this key's signature and expires is in the future.

        The signature is compared in constant time, and checked before the expiry so that
        a forged URL is never told whether its expiry would have been accepted.
        """
        if not expires or not sig:
            raise PermissionDenied(
                "the URL is not signed: it needs both 'expires' and 'sig'", reason="bad_signature"
            )
        if not (expires.isascii() and expires.isdigit()) or len(expires) > 12:
            raise PermissionDenied(
                "the URL's 'expires' is not a Unix time in seconds", reason="bad_signature"
            )
        expected = self.signature(method, image_id, int(expires))
        if not hmac.compare_digest(expected.encode(), sig.encode()):
            raise PermissionDenied(
                "the URL's signature is not valid for this file and method; "
                "use the URL exactly as it was issued",
                reason="bad_signature",
            )
        if int(expires) <= int(now.timestamp()):
            raise PermissionDenied(
                "the signed URL has expired; request a new one "
                "(SignUpload for uploads, SignDownload for downloads)",
                reason="expired_signature",
            )


def is_image_id(value: str) -> bool:
    """Says whether value has the form of an image id (img_ and 26 base32 characters)."""
    return IMAGE_ID.fullmatch(value) is not None


def is_style_id(value: str) -> bool:
    """Says whether value has the form of a style id (sty_ and 26 base32 characters)."""
    return STYLE_ID.fullmatch(value) is not None


def parse_image_ref(ref: str, *, field: str = "url") -> str:
    """The image id named by a file URL or a bare image id.

    Accepted: `img_...`, and `http(s)://<any host>/v1/files/<image_id>` with or without a
    query string (a signed URL works too). The host is not checked: the same image is
    reachable through the edge, an internal address or a test server.
    """
    text = ref.strip()
    if not text:
        raise InvalidArgument(f"{field} is required: pass a file URL or an image id", field=field)
    if is_image_id(text):
        return text
    if text.startswith("img_"):
        raise InvalidArgument(f"{text!r} is not a valid image id", field=field, reason="bad_url")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidArgument(
            f"{field} must be an http(s) file URL such as "
            f"https://<host>/v1/files/img_..., an image id or a style id (sty_...), "
            f"got {ref!r}",
            field=field,
            reason="bad_url",
        )
    match = _PATH.fullmatch(parts.path)
    if match is None or not is_image_id(match["image_id"]):
        raise InvalidArgument(
            f"{field} does not name an image: expected a path /v1/files/img_..., "
            f"got {parts.path or '/'!r}",
            field=field,
            reason="bad_url",
        )
    return match["image_id"]
