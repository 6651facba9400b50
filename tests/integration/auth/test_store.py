"""The auth store, key ring and bootstrap commands on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from gouache.db import create_engine
from gouache.runtime.auth import TokenVerifier
from gouache.runtime.errors import AlreadyExists, FailedPrecondition, Unauthenticated
from services.auth.bootstrap import bootstrap_admin, ensure_service_account, rotate_signing_key
from services.auth.domain import ApiKeyRecord, User
from services.auth.keys import KeyRing
from services.auth.server import open_components
from services.auth.settings import AuthSettings
from services.auth.store import AuthDatabase

NOW = datetime(2030, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)


def _settings(db_url: str, **overrides: object) -> AuthSettings:
    return AuthSettings(database_url=db_url, scrypt_n=2**10, scrypt_p=1, **overrides)  # type: ignore[arg-type]


@pytest.fixture
async def database(db_url: str) -> AsyncIterator[AuthDatabase]:
    database = AuthDatabase(create_engine(db_url))
    await database.create_schema()
    await database.create_schema()
    try:
        yield database
    finally:
        await database.close()


def _user(user_id: str, email: str, role: str = "user") -> User:
    return User(user_id, email, "Name", role, "scrypt$hash", NOW)


async def test_users_round_trip_and_emails_are_unique(database: AuthDatabase) -> None:
    await database.add_user(_user("usr_1", "a@example.com"))
    assert await database.user_by_id("usr_1") == _user("usr_1", "a@example.com")
    assert await database.user_by_email("a@example.com") == _user("usr_1", "a@example.com")
    assert await database.user_by_email("b@example.com") is None
    with pytest.raises(AlreadyExists, match=r"a@example\.com"):
        await database.add_user(_user("usr_2", "a@example.com"))
    assert await database.user_by_id("usr_2") is None


async def test_api_keys_list_in_order_and_revoke_once(database: AuthDatabase) -> None:
    await database.add_user(_user("usr_1", "a@example.com"))
    await database.add_user(_user("usr_2", "b@example.com"))
    for index, key_id in enumerate(["k2", "k1", "k3"]):
        owner = "usr_2" if key_id == "k3" else "usr_1"
        await database.add_api_key(
            ApiKeyRecord(key_id, owner, key_id, "h" * 64, NOW + timedelta(seconds=index))
        )
    assert [k.key_id for k in await database.api_keys_of("usr_1")] == ["k2", "k1"]
    await database.revoke_api_key("k1", NOW + timedelta(hours=1))
    await database.revoke_api_key("k1", NOW + timedelta(hours=2))
    revoked = await database.api_key("k1")
    assert revoked is not None
    assert revoked.revoked_at == NOW + timedelta(hours=1)
    assert await database.api_key("missing") is None


async def test_key_ring_on_the_database(database: AuthDatabase) -> None:
    clock = [NOW]
    ring = KeyRing(database, passphrase=b"pass", keep_s=600, clock=lambda: clock[0])
    await ring.ensure()
    first = (await ring.jwks())[0]["kid"]
    clock[0] += timedelta(seconds=1)
    second = await ring.rotate()
    assert [k["kid"] for k in await ring.jwks()] == [second, first]
    # A second replica with the same passphrase sees the same keys.
    other = KeyRing(database, passphrase=b"pass", keep_s=600, clock=lambda: clock[0])
    await other.reload()
    assert await other.jwks() == await ring.jwks()
    token = await other.sign(
        {"sub": "usr_1", "iss": "gouache-auth", "aud": "gouache", "iat": 1, "exp": 2**40}
    )
    assert (await TokenVerifier(ring.jwks).verify(token)).user_id == "usr_1"
    clock[0] += timedelta(seconds=601)
    await ring.rotate()
    assert first not in {k["kid"] for k in await ring.jwks()}
    with pytest.raises(RuntimeError, match="PASSPHRASE"):
        await KeyRing(database, keep_s=600).reload()


async def test_bootstrap_admin_is_idempotent(db_url: str) -> None:
    settings = _settings(db_url)
    first = await bootstrap_admin(settings, "Admin@Example.com", "an admin password")
    second = await bootstrap_admin(settings, "admin@example.com")
    assert first.created
    assert not second.created
    assert first.user_id == second.user_id
    assert first.email == "admin@example.com"
    assert first.api_key != second.api_key
    parts = open_components(settings)
    try:
        await parts.database.create_schema()
        await parts.keys.ensure()
        for key in (first.api_key, second.api_key):
            issued = await parts.accounts.issue_token("client_credentials", api_key=key)
            assert "admin:*" in issued.scopes
        issued = await parts.accounts.issue_token(
            "password", email="admin@example.com", password="an admin password"
        )
        assert issued.access_token
    finally:
        await parts.database.close()


async def test_service_accounts_are_idempotent_and_hold_internal(db_url: str) -> None:
    settings = _settings(db_url)
    first = await ensure_service_account(settings, "jobs")
    second = await ensure_service_account(settings, "jobs")
    assert first != second
    parts = open_components(settings)
    try:
        await parts.keys.ensure()
        issued = await parts.accounts.issue_token("client_credentials", api_key=first)
        principal = await TokenVerifier(parts.keys.jwks).verify(issued.access_token)
        assert principal.is_service
        assert principal.role == "service"
        assert principal.email == "jobs@services.gouache.internal"
        with pytest.raises(Unauthenticated):
            await parts.accounts.issue_token(
                "password", email="jobs@services.gouache.internal", password="x" * 12
            )
    finally:
        await parts.database.close()
    with pytest.raises(FailedPrecondition, match="role 'service'"):
        await bootstrap_admin(settings, "jobs@services.gouache.internal")


async def test_rotation_by_command_reaches_a_running_key_ring(db_url: str) -> None:
    settings = _settings(db_url, signing_key_passphrase=SecretStr("pp"), key_refresh_s=0.0)
    parts = open_components(settings)
    try:
        await parts.database.create_schema()
        await parts.keys.ensure()
        before = [k["kid"] for k in await parts.keys.jwks()]
        kid = await rotate_signing_key(settings)
        after = [k["kid"] for k in await parts.keys.jwks()]
        assert after == [kid, *before]
    finally:
        await parts.database.close()


async def test_commands_run_from_the_shell(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "GOUACHE_AUTH_STATE_DIR": str(tmp_path / "state"),
        "GOUACHE_AUTH_SCRYPT_N": "1024",
        "GOUACHE_AUTH_SCRYPT_P": "1",
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "services.auth", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    boot, account = await asyncio.gather(
        asyncio.to_thread(run, "bootstrap", "--email", "root@example.com"),
        asyncio.to_thread(run, "create-service-account", "tiling"),
    )
    assert boot.returncode == 0, boot.stderr
    assert boot.stdout.strip().startswith("gk_")
    assert "root@example.com" in boot.stderr
    assert account.returncode == 0, account.stderr
    assert account.stdout.strip().startswith("gk_")
    assert (tmp_path / "state" / "auth.db").exists()
    bad = await asyncio.to_thread(run, "bootstrap", "--email", "nope")
    assert bad.returncode == 2
    assert "email" in bad.stderr

    # --json, for scripts and the embedded mesh: the keys on stdout only, as one object.
    boot = await asyncio.to_thread(run, "bootstrap", "--email", "root@example.com", "--json")
    assert boot.returncode == 0, boot.stderr
    admin = json.loads(boot.stdout)
    assert (admin["email"], admin["created"]) == ("root@example.com", False)
    assert admin["api_key"].startswith("gk_")
    accounts = await asyncio.to_thread(run, "create-service-account", "jobs", "tiling", "--json")
    assert accounts.returncode == 0, accounts.stderr
    keys = json.loads(accounts.stdout)
    assert sorted(keys) == ["jobs", "tiling"]
    assert all(key.startswith("gk_") for key in keys.values())
    assert "gk_" not in boot.stderr + accounts.stderr
