"""A throwaway Ed25519 signer that mints tokens the way the auth service does, for tests."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm


class TestSigner:
    """Signs EdDSA JWTs with a fresh key; `jwks()` publishes its public half."""

    __test__ = False

    def __init__(self, kid: str = "test-key") -> None:
        self.kid = kid
        self._key = Ed25519PrivateKey.generate()

    def jwks(self) -> list[Mapping[str, Any]]:
        jwk = json.loads(OKPAlgorithm.to_jwk(self._key.public_key()))
        jwk.update({"kid": self.kid, "alg": "EdDSA", "use": "sig"})
        return [jwk]

    async def fetch(self) -> Sequence[Mapping[str, Any]]:
        return self.jwks()

    def token(
        self,
        sub: str = "usr_test",
        *,
        role: str = "user",
        scopes: Sequence[str] = ("read:jobs", "write:jobs", "read:models", "write:webhooks"),
        ttl_s: int = 300,
        issuer: str = "gouache-auth",
        audience: str = "gouache",
        extra: Mapping[str, Any] | None = None,
    ) -> str:
        """A signed token; `extra` adds claims (plan, api_key_id)."""
        now = int(time.time())
        claims = {
            "sub": sub,
            "role": role,
            "scope": " ".join(scopes),
            "iss": issuer,
            "aud": audience,
            "iat": now,
            "exp": now + ttl_s,
            "jti": uuid.uuid4().hex,
            **(extra or {}),
        }
        return jwt.encode(claims, self._key, algorithm="EdDSA", headers={"kid": self.kid})
