"""Auth rules without a network: passwords, API keys, scopes, claims, throttling, keys."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from gouache.runtime.auth import ROLE_SCOPES, SCOPES, TokenVerifier
from gouache.runtime.errors import (
    InvalidArgument,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
)
from services.auth.domain import (
    ROLES,
    FailureThrottle,
    ScryptParams,
    api_secret_matches,
    grant_scopes,
    hash_api_secret,
    hash_password,
    new_api_key,
    normalize_email,
    parse_api_key,
    service_account_email,
    token_claims,
    validate_account_role,
    validate_new_role,
    validate_password,
    verify_password,
)
from services.auth.keys import KeyRing, StoredSigningKey, seal, superseded, unseal

CHEAP = ScryptParams(n=2**10, r=8, p=1)
NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_password_hash_verifies_and_is_salted() -> None:
    first = hash_password("correct horse battery", CHEAP)
    second = hash_password("correct horse battery", CHEAP)
    assert first != second
    assert first.startswith("scrypt$1024$8$1$")
    assert verify_password("correct horse battery", first)
    assert not verify_password("correct horse battery!", first)


def test_default_scrypt_cost_is_owasp_grade() -> None:
    params = ScryptParams()
    assert params.n * params.r * 128 >= 32 * 1024 * 1024
    assert params.p >= 3


@pytest.mark.parametrize("stored", ["", "bcrypt$x", "scrypt$a$b$c$d$e", "scrypt$1024$8$1$!!$!!"])
def test_malformed_password_hash_never_verifies(stored: str) -> None:
    assert not verify_password("whatever password", stored)


def test_api_key_round_trip() -> None:
    parts = new_api_key()
    assert parts.text.startswith(f"gk_{parts.key_id}_")
    assert parse_api_key(parts.text) == parts
    assert parse_api_key(f"  {parts.text}\n") == parts
    stored = hash_api_secret(parts.secret)
    assert parts.secret not in stored
    assert api_secret_matches(parts.secret, stored)
    assert not api_secret_matches(new_api_key().secret, stored)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "gk_",
        "not-a-key",
        "gk_0123456789abcdef",
        "gk_0123456789abcdef_",
        "gk_XYZ_" + "a" * 52,
        "ak_0123456789abcdef_" + "a" * 52,
        "gk_0123456789abcdef_" + "a" * 51,
        "gk_0123456789abcdef_" + "A" * 52,
    ],
)
def test_malformed_api_key_is_invalid_argument(text: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_api_key(text)
    assert caught.value.field == "api_key"


def test_empty_scopes_grant_everything_the_role_allows() -> None:
    for role, scopes in ROLE_SCOPES.items():
        assert grant_scopes(role, []) == tuple(scopes)


def test_requested_scopes_are_a_subset_in_canonical_order() -> None:
    assert grant_scopes("user", ["write:jobs", "read:jobs"]) == ("read:jobs", "write:jobs")
    assert grant_scopes("user", ["read:jobs write:jobs"]) == ("read:jobs", "write:jobs")
    assert grant_scopes("admin", ["admin:*"]) == ("admin:*",)


def test_scope_the_role_may_not_hold_is_permission_denied() -> None:
    with pytest.raises(PermissionDenied, match="admin:\\*"):
        grant_scopes("user", ["read:jobs", "admin:*"])
    with pytest.raises(PermissionDenied):
        grant_scopes("service", ["read:jobs"])


def test_unknown_scope_is_invalid_argument() -> None:
    with pytest.raises(InvalidArgument) as caught:
        grant_scopes("admin", ["read:everything"])
    assert caught.value.field == "scopes"
    assert "read:everything" in caught.value.message


def test_token_claims() -> None:
    claims = token_claims(
        user_id="usr_1",
        role="user",
        email="a@example.com",
        scopes=("read:jobs", "write:jobs"),
        now=NOW,
        ttl_s=900,
        issuer="iss",
        audience="aud",
    )
    assert claims["sub"] == "usr_1"
    assert claims["scope"] == "read:jobs write:jobs"
    assert claims["iss"] == "iss"
    assert claims["aud"] == "aud"
    assert claims["exp"] - claims["iat"] == 900
    assert claims["iat"] == int(NOW.timestamp())
    assert claims["jti"]
    other = token_claims(**{**_claim_args(), "now": NOW})
    assert other["jti"] != claims["jti"]


def _claim_args() -> dict[str, Any]:
    return {
        "user_id": "usr_1",
        "role": "user",
        "email": "a@example.com",
        "scopes": (),
        "ttl_s": 60,
        "issuer": "iss",
        "audience": "aud",
    }


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("Alice@Example.COM ", "alice@example.com"),
        ("a.b+c@sub.example.org", "a.b+c@sub.example.org"),
    ],
)
def test_email_is_normalized(raw: str, normalized: str) -> None:
    assert normalize_email(raw) == normalized


@pytest.mark.parametrize(
    "raw",
    ["", "alice", "alice@", "@example.com", "a@b", "a b@example.com", "a@" + "x" * 260 + ".com"],
)
def test_bad_email_is_invalid_argument(raw: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        normalize_email(raw)
    assert caught.value.field == "email"


def test_password_length_rules() -> None:
    validate_password("x" * 12)
    for bad in ("", "x" * 11, "x" * 1025):
        with pytest.raises(InvalidArgument) as caught:
            validate_password(bad)
        assert caught.value.field == "password"


def test_roles_for_create_user() -> None:
    assert validate_new_role("") == "user"
    assert validate_new_role("Admin") == "admin"
    for made_by_bootstrap_only in ("service", "operator"):
        with pytest.raises(InvalidArgument):
            validate_new_role(made_by_bootstrap_only)


def test_roles_for_bootstrap_accounts() -> None:
    assert validate_account_role("service") == "service"
    assert validate_account_role(" Operator") == "operator"
    for bad in ("", "user", "admin", "root"):
        with pytest.raises(InvalidArgument) as caught:
            validate_account_role(bad)
        assert caught.value.field == "role"


def test_operator_administers_models_only() -> None:
    assert "write:models" in SCOPES
    assert grant_scopes("operator", []) == ("read:models", "write:models")
    assert "write:models" in grant_scopes("admin", [])
    assert "write:models" not in grant_scopes("user", [])
    with pytest.raises(PermissionDenied):
        grant_scopes("user", ["write:models"])
    with pytest.raises(PermissionDenied):
        grant_scopes("operator", ["read:jobs"])
    assert set(ROLES) == set(ROLE_SCOPES)


def test_service_account_names() -> None:
    assert service_account_email("jobs") == "jobs@services.gouache.internal"
    for bad in ("", "Jobs", "1jobs", "jobs@evil", "x" * 64):
        with pytest.raises(InvalidArgument):
            service_account_email(bad)


def test_throttle_locks_out_after_limit_and_recovers() -> None:
    now = [1000.0]
    throttle = FailureThrottle(limit=3, window_s=60, monotonic=lambda: now[0])
    for _ in range(3):
        throttle.check("key:a")
        throttle.record_failure("key:a")
    with pytest.raises(ResourceExhausted, match="retry in"):
        throttle.check("key:a")
    throttle.check("key:b")
    now[0] += 61
    throttle.check("key:a")


def test_throttle_reset_on_success() -> None:
    throttle = FailureThrottle(limit=2, window_s=60)
    throttle.record_failure("email:x")
    throttle.reset("email:x")
    throttle.record_failure("email:x")
    throttle.check("email:x")


class _MemoryKeys:
    def __init__(self) -> None:
        self.keys: list[StoredSigningKey] = []

    async def signing_keys(self) -> list[StoredSigningKey]:
        return sorted(self.keys, key=lambda k: k.created_at)

    async def add_signing_key(self, key: StoredSigningKey) -> None:
        self.keys.append(key)

    async def retire_signing_keys(self, kids: Sequence[str], at: datetime) -> None:
        self.keys = [replace(k, retired_at=at) if k.kid in kids else k for k in self.keys]


async def test_key_ring_signs_with_newest_and_publishes_all_active() -> None:
    clock = [NOW]
    store = _MemoryKeys()
    ring = KeyRing(store, keep_s=3600, clock=lambda: clock[0])
    await ring.ensure()
    await ring.ensure()
    assert len(store.keys) == 1
    first = store.keys[0].kid
    clock[0] += timedelta(minutes=1)
    second = await ring.rotate()
    jwks = await ring.jwks()
    assert [k["kid"] for k in jwks] == [second, first]
    assert all(k["kty"] == "OKP" and k["crv"] == "Ed25519" and k["alg"] == "EdDSA" for k in jwks)
    assert "d" not in jwks[0]
    token = await ring.sign(
        {"sub": "usr_1", "iss": "gouache-auth", "aud": "gouache", "iat": 1, "exp": 2**40}
    )
    assert jwt.get_unverified_header(token)["kid"] == second
    principal = await TokenVerifier(ring.jwks).verify(token)
    assert principal.user_id == "usr_1"
    # Once the successor is older than keep_s, the old key leaves the JWKS.
    clock[0] += timedelta(hours=2)
    await ring.rotate()
    assert first not in {k["kid"] for k in await ring.jwks()}
    assert second in {k["kid"] for k in await ring.jwks()}


def test_superseded_keeps_newest_always() -> None:
    keys = [StoredSigningKey(f"k{i}", b"", False, NOW + timedelta(hours=i)) for i in range(3)]
    assert superseded(keys, NOW + timedelta(hours=10), keep_s=60) == ["k0", "k1"]
    assert superseded(keys, NOW + timedelta(hours=2, seconds=30), keep_s=60) == ["k0"]
    assert superseded(keys[:1], NOW + timedelta(days=999), keep_s=60) == []


def test_private_key_sealed_with_passphrase() -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    pem, encrypted = seal(key, b"s3cret")
    assert encrypted
    assert b"ENCRYPTED" in pem
    stored = StoredSigningKey("k", pem, encrypted, NOW)
    assert unseal(stored, b"s3cret").public_key() == key.public_key()
    with pytest.raises(RuntimeError, match="PASSPHRASE"):
        unseal(stored, b"")
    with pytest.raises(RuntimeError, match="cannot decrypt"):
        unseal(stored, b"wrong")


async def test_expired_token_is_refused() -> None:
    ring = KeyRing(_MemoryKeys(), keep_s=60, clock=lambda: NOW)
    await ring.ensure()
    past = datetime.now(UTC) - timedelta(hours=1)
    claims = token_claims(
        **{**_claim_args(), "now": past, "issuer": "gouache-auth", "audience": "gouache"}
    )
    token = await ring.sign(claims)
    with pytest.raises(Unauthenticated, match="expired"):
        await TokenVerifier(ring.jwks).verify(token)
