"""An in-process auth service on port 0 over a SQLite file, with an admin and a user."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from gouache.contracts.auth.v1 import auth_pb2, auth_pb2_grpc
from gouache.runtime.server import RunningService, start_service
from services.auth.bootstrap import bootstrap_admin
from services.auth.server import build
from services.auth.settings import AuthSettings

ADMIN_EMAIL = "admin@example.com"
USER_EMAIL = "user@example.com"
USER_PASSWORD = "a long enough password"


@dataclass
class AuthHarness:
    settings: AuthSettings
    running: RunningService
    stub: auth_pb2_grpc.AuthServiceStub
    admin_key: str
    admin_token: str
    user_id: str
    user_key: str
    user_token: str

    async def token(self, api_key: str, *scopes: str) -> str:
        response = await self.stub.IssueToken(
            auth_pb2.IssueTokenRequest(
                grant_type="client_credentials", api_key=api_key, scopes=list(scopes)
            )
        )
        token: str = response.access_token
        return token


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


def auth_settings(tmp_path: Path, **overrides: Any) -> AuthSettings:
    """Fast settings for tests: a free port, a cheap KDF, a small failure limit."""
    values: dict[str, Any] = {
        "port": 0,
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}",
        "scrypt_n": 2**10,
        "scrypt_p": 1,
        "max_failed_logins": 3,
        **overrides,
    }
    return AuthSettings(**values)


@pytest.fixture
async def auth(tmp_path: Path) -> AsyncIterator[AuthHarness]:
    settings = auth_settings(tmp_path)
    admin = await bootstrap_admin(settings, ADMIN_EMAIL)
    spec, verifier = await build(settings)
    running = await start_service(settings, spec, verifier)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    try:
        harness = AuthHarness(settings, running, stub, admin.api_key, "", "", "", "")
        harness.admin_token = await harness.token(admin.api_key)
        user = await stub.CreateUser(
            auth_pb2.CreateUserRequest(email=USER_EMAIL, password=USER_PASSWORD),
            metadata=bearer(harness.admin_token),
        )
        harness.user_id = user.user_id
        issued = await stub.IssueToken(
            auth_pb2.IssueTokenRequest(
                grant_type="password", email=USER_EMAIL, password=USER_PASSWORD
            )
        )
        harness.user_token = issued.access_token
        key = await stub.CreateApiKey(
            auth_pb2.CreateApiKeyRequest(name="laptop"), metadata=bearer(harness.user_token)
        )
        harness.user_key = key.api_key
        yield harness
    finally:
        await channel.close()
        await running.stop(0)
