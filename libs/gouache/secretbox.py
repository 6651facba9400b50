"""Secrets kept for later use, encrypted at rest with AES-256-GCM under keys from settings.

A setting holds one key or several, comma-separated, each the standard base64 of 32 random
bytes (`python -c 'import base64,os; print(base64.b64encode(os.urandom(32)).decode())'`).
The first key seals; every key opens. To rotate, put a new key first and keep the old ones
after it until nothing sealed under them is left (a service re-seals its rows at start).

A sealed value is a key id (the first 16 hex digits of the key's SHA-256, never the key)
and a token, urlsafe base64 of a 12-byte random nonce and the ciphertext with its tag.
The caller's context (e.g. the row's id) is bound in as associated data, so a token copied
onto another row does not open there.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12


class SecretBoxError(ValueError):
    """A key setting that cannot be used, or a sealed value that does not open."""


@dataclass(frozen=True)
class Sealed:
    """What is stored: which key sealed it, and the token."""

    key_id: str
    token: str


def generate_key() -> str:
    """A fresh key in the settings' format (base64 of 32 random bytes)."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:16]


class SecretBox:
    """Seals with the first key, opens with any key it holds."""

    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise SecretBoxError("at least one key is needed")
        self._ciphers = {key_id(key): AESGCM(key) for key in keys}
        self.primary_id = key_id(keys[0])
        self._primary = self._ciphers[self.primary_id]

    @classmethod
    def from_setting(cls, value: str, *, variable: str) -> SecretBox:
        """Keys from a comma-separated setting; the error names `variable` and the bad item."""
        items = [item.strip() for item in value.split(",") if item.strip()]
        if not items:
            raise SecretBoxError(
                f"{variable} is empty: set it to the base64 of 32 random bytes "
                "(e.g. `python -c 'import base64,os; print(base64.b64encode(os.urandom(32)).decode())'`)"
            )
        keys: list[bytes] = []
        for position, item in enumerate(items, start=1):
            try:
                key = base64.b64decode(item, validate=True)
            except (binascii.Error, ValueError):
                raise SecretBoxError(
                    f"{variable}: key {position} of {len(items)} is not valid base64"
                ) from None
            if len(key) != KEY_BYTES:
                raise SecretBoxError(
                    f"{variable}: key {position} of {len(items)} decodes to {len(key)} bytes; "
                    f"AES-256 needs exactly {KEY_BYTES}"
                )
            keys.append(key)
        return cls(keys)

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._ciphers)

    def seal(self, plaintext: str, context: str) -> Sealed:
        """Encrypts under the first key, binding `context`."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._primary.encrypt(nonce, plaintext.encode(), context.encode())
        token = base64.urlsafe_b64encode(nonce + sealed).decode()
        return Sealed(self.primary_id, token)

    def open(self, sealed: Sealed, context: str) -> str:
        """The plaintext; SecretBoxError when the key is not held or the token was altered."""
        cipher = self._ciphers.get(sealed.key_id)
        if cipher is None:
            raise SecretBoxError(
                f"sealed under key {sealed.key_id}, which is not among the configured keys "
                f"({', '.join(sorted(self._ciphers))}): keep the old key after the new one"
            )
        try:
            raw = base64.urlsafe_b64decode(sealed.token.encode())
            plaintext = cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode())
        except (InvalidTag, binascii.Error, ValueError):
            raise SecretBoxError(
                f"a value sealed under key {sealed.key_id} does not open: altered or moved"
            ) from None
        return plaintext.decode()
