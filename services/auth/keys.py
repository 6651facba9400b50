"""Ed25519 signing keys: generation, encryption at rest, JWKS, rotation and token signing."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

logger = logging.getLogger(__name__)

ALGORITHM = "EdDSA"


@dataclass(frozen=True)
class StoredSigningKey:
    """A signing key as the database holds it: the private half as (maybe encrypted) PEM."""

    kid: str
    private_pem: bytes
    encrypted: bool
    created_at: datetime
    retired_at: datetime | None = None


class SigningKeyStore(Protocol):
    """Where signing keys are kept (store.AuthDatabase implements it)."""

    async def signing_keys(self) -> list[StoredSigningKey]:
        """Every key, retired ones included, oldest first."""
        ...

    async def add_signing_key(self, key: StoredSigningKey) -> None: ...

    async def retire_signing_keys(self, kids: Sequence[str], at: datetime) -> None: ...


@dataclass(frozen=True)
class SigningKey:
    """A usable key: the kid and the private key in memory."""

    kid: str
    private_key: Ed25519PrivateKey
    created_at: datetime

    def public_jwk(self) -> dict[str, str]:
        """The public half as a JWK (RFC 8037 OKP/Ed25519) with kid, alg and use."""
        jwk: dict[str, str] = json.loads(OKPAlgorithm.to_jwk(self.private_key.public_key()))
        jwk.update({"kid": self.kid, "alg": ALGORITHM, "use": "sig"})
        return jwk


def new_kid(now: datetime) -> str:
    """A key id that sorts by creation time and says when the key was made."""
    return f"{now.astimezone(UTC):%Y%m%d%H%M%S}-{secrets.token_hex(4)}"


def seal(key: Ed25519PrivateKey, passphrase: bytes) -> tuple[bytes, bool]:
    """PKCS#8 PEM of the private key, encrypted when a passphrase is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    return pem, bool(passphrase)


def unseal(stored: StoredSigningKey, passphrase: bytes) -> Ed25519PrivateKey:
    """The private key of a stored key; a clear error when the passphrase is missing or wrong."""
    if stored.encrypted and not passphrase:
        raise RuntimeError(
            f"signing key {stored.kid} is encrypted: set GOUACHE_AUTH_SIGNING_KEY_PASSPHRASE"
        )
    try:
        key = serialization.load_pem_private_key(
            stored.private_pem, password=passphrase if stored.encrypted else None
        )
    except ValueError as exc:
        raise RuntimeError(
            f"cannot decrypt signing key {stored.kid}: is GOUACHE_AUTH_SIGNING_KEY_PASSPHRASE "
            "the one it was created with?"
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise RuntimeError(f"signing key {stored.kid} is not an Ed25519 key")
    return key


def superseded(keys: Sequence[StoredSigningKey], now: datetime, keep_s: float) -> list[str]:
    """Kids of active keys whose successor is older than keep_s: no valid token uses them.

    The newest key signs; an older key stays published until every token it signed has
    expired and every replica has switched to its successor.
    """
    active = sorted((k for k in keys if k.retired_at is None), key=lambda k: k.created_at)
    return [
        key.kid
        for key, successor in pairwise(active)
        if (now - successor.created_at).total_seconds() > keep_s
    ]


class KeyRing:
    """The service's signing keys: the newest signs, every unretired key verifies.

    Keys are read from the store at start and again every `refresh_s`, so a rotation made by
    another process (or replica) is picked up without a restart.
    """

    def __init__(
        self,
        store: SigningKeyStore,
        *,
        passphrase: bytes = b"",
        keep_s: float,
        refresh_s: float = 60.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._passphrase = passphrase
        self._keep_s = keep_s
        self._refresh_s = refresh_s
        self._clock = clock
        self._keys: list[SigningKey] = []
        self._cache: dict[str, Ed25519PrivateKey] = {}
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()

    async def ensure(self) -> None:
        """At start: creates the first key if there is none, retires superseded keys, loads."""
        stored = await self._store.signing_keys()
        if not any(k.retired_at is None for k in stored):
            await self._add_new_key()
            stored = await self._store.signing_keys()
        await self._retire_superseded(stored)
        await self.reload()
        if not self._passphrase:
            logger.warning(
                "signing keys are stored unencrypted; set GOUACHE_AUTH_SIGNING_KEY_PASSPHRASE "
                "to encrypt new keys"
            )

    async def rotate(self) -> str:
        """Adds a new signing key (it signs from now on) and retires superseded ones."""
        kid = await self._add_new_key()
        await self._retire_superseded(await self._store.signing_keys())
        await self.reload()
        return kid

    async def reload(self) -> None:
        """Reads the active keys from the store."""
        async with self._lock:
            stored = [k for k in await self._store.signing_keys() if k.retired_at is None]
            keys = []
            for item in sorted(stored, key=lambda k: k.created_at):
                private = self._cache.get(item.kid)
                if private is None:
                    private = await asyncio.to_thread(unseal, item, self._passphrase)
                    self._cache[item.kid] = private
                keys.append(SigningKey(item.kid, private, item.created_at))
            self._keys = keys
            self._loaded_at = time.monotonic()

    async def _current(self) -> list[SigningKey]:
        if time.monotonic() - self._loaded_at >= self._refresh_s:
            try:
                await self.reload()
            except Exception:
                if not self._keys:
                    raise
                logger.exception("could not reload signing keys; using the ones loaded")
        if not self._keys:
            raise RuntimeError("no signing key loaded; KeyRing.ensure() must run at start")
        return self._keys

    async def jwks(self) -> list[dict[str, str]]:
        """The public keys of every active key, newest first."""
        return [key.public_jwk() for key in reversed(await self._current())]

    async def sign(self, claims: Mapping[str, Any]) -> str:
        """A compact JWS of claims, signed by the newest key, with its kid in the header."""
        key = (await self._current())[-1]
        return jwt.encode(
            dict(claims), key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid}
        )

    async def _add_new_key(self) -> str:
        now = self._clock()
        private = Ed25519PrivateKey.generate()
        pem, encrypted = seal(private, self._passphrase)
        kid = new_kid(now)
        await self._store.add_signing_key(StoredSigningKey(kid, pem, encrypted, now))
        self._cache[kid] = private
        logger.info("signing key created", extra={"kid": kid, "encrypted": encrypted})
        return kid

    async def _retire_superseded(self, stored: Sequence[StoredSigningKey]) -> None:
        now = self._clock()
        kids = superseded(stored, now, self._keep_s)
        if kids:
            await self._store.retire_signing_keys(kids, now)
            for kid in kids:
                self._cache.pop(kid, None)
            logger.info("signing keys retired", extra={"kids": kids})


def keep_published_s(token_ttl_s: int, refresh_s: float) -> float:
    """How long a superseded key stays in the JWKS: tokens it signed may still be in use."""
    return timedelta(seconds=2 * token_ttl_s + refresh_s + 60).total_seconds()
