"""Credentials: scrypt password hashes and API keys whose secrets are stored only hashed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from gouache.runtime.errors import InvalidArgument

API_KEY_PREFIX = "gk_"
_KEY_ID = re.compile(r"[0-9a-f]{16}")
_KEY_SECRET = re.compile(r"[a-z2-7]{52}")


@dataclass(frozen=True)
class ScryptParams:
    """scrypt cost; the defaults are one of OWASP's recommended settings (32 MiB, p=3)."""

    n: int = 2**15
    r: int = 8
    p: int = 3
    dklen: int = 32

    def derive(self, password: str, salt: bytes) -> bytes:
        """The key scrypt derives from password and salt with these costs."""
        return hashlib.scrypt(
            password.encode(),
            salt=salt,
            n=self.n,
            r=self.r,
            p=self.p,
            dklen=self.dklen,
            maxmem=256 * self.r * self.n + 64 * 1024 * 1024,
        )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, params: ScryptParams = ScryptParams()) -> str:
    """A self-describing scrypt hash, `scrypt$n$r$p$salt$key`, with a fresh 16-byte salt."""
    salt = secrets.token_bytes(16)
    key = params.derive(password, salt)
    return f"scrypt${params.n}${params.r}${params.p}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, encoded: str) -> bool:
    """Whether password matches a hash from hash_password (constant-time comparison)."""
    try:
        scheme, n, r, p, salt, key = encoded.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(key)
        params = ScryptParams(n=int(n), r=int(r), p=int(p), dklen=len(expected))
        derived = params.derive(password, _unb64(salt))
    except ValueError:
        return False
    return hmac.compare_digest(derived, expected)


@dataclass(frozen=True)
class ApiKeyParts:
    """An API key split into its public id and its secret."""

    key_id: str
    secret: str

    @property
    def text(self) -> str:
        return f"{API_KEY_PREFIX}{self.key_id}_{self.secret}"


def new_api_key() -> ApiKeyParts:
    """A fresh key: a 64-bit hex id and a 256-bit base32 secret."""
    secret = base64.b32encode(secrets.token_bytes(32)).decode().rstrip("=").lower()
    return ApiKeyParts(key_id=secrets.token_hex(8), secret=secret)


def parse_api_key(text: str) -> ApiKeyParts:
    """Splits `gk_<key_id>_<secret>`; a string of another shape is INVALID_ARGUMENT."""
    body = text.strip().removeprefix(API_KEY_PREFIX)
    key_id, _, secret = body.partition("_")
    if (
        not text.strip().startswith(API_KEY_PREFIX)
        or not _KEY_ID.fullmatch(key_id)
        or not _KEY_SECRET.fullmatch(secret)
    ):
        raise InvalidArgument(
            "api_key must look like gk_<key_id>_<secret>, as CreateApiKey returned it",
            field="api_key",
            reason="api_key_malformed",
        )
    return ApiKeyParts(key_id=key_id, secret=secret)


def hash_api_secret(secret: str) -> str:
    """SHA-256 of a key's secret: 256 random bits need no salt or slow KDF."""
    return hashlib.sha256(secret.encode()).hexdigest()


def api_secret_matches(secret: str, stored_hash: str) -> bool:
    """Constant-time comparison of a presented secret with the stored hash."""
    return hmac.compare_digest(hash_api_secret(secret), stored_hash)
