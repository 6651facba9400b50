"""The embedded mesh's bootstrap makes an operator account and writes operator.json for it."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path

from gouache.cli.mesh import Mesh, MeshConfig, MeshPorts
from gouache.runtime.auth import TokenVerifier
from services.auth.server import open_components
from services.auth.settings import AuthSettings


async def _principal_of(settings: AuthSettings, api_key: str) -> tuple[str, frozenset[str]]:
    parts = open_components(settings)
    try:
        await parts.keys.ensure()
        issued = await parts.accounts.issue_token("client_credentials", api_key=api_key)
        principal = await TokenVerifier(parts.keys.jwks).verify(issued.access_token)
    finally:
        await parts.database.close()
    return principal.role, principal.scopes


def _bootstrap(mesh: Mesh) -> None:
    """Mesh._bootstrap runs its own event loop, as `gouache up` does before serving."""
    mesh.credentials = mesh._bootstrap()


async def test_bootstrap_writes_the_operator_credentials(tmp_path: Path) -> None:
    ports = MeshPorts.from_base(46000)
    mesh = Mesh(MeshConfig(state_dir=tmp_path / "state", ports=ports))
    await asyncio.to_thread(_bootstrap, mesh)
    credentials = mesh.credentials
    assert credentials is not None
    assert credentials.operator_api_key
    assert credentials.operator_api_key != credentials.admin_api_key

    path = tmp_path / "state" / "operator.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "state" / "credentials.json").stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {
        "api_key": credentials.operator_api_key,
        "jobs_addr": "127.0.0.1:46002",
        "feedback_addr": "127.0.0.1:46005",
        "inference_addr": "127.0.0.1:46004",
        "auth_addr": "127.0.0.1:46000",
    }

    prefix = "GOUACHE_AUTH_"
    settings = AuthSettings.model_validate(
        {
            key.removeprefix(prefix).lower(): value
            for key, value in mesh._service_env("auth").items()
            if key.startswith(prefix)
        }
    )
    role, scopes = await _principal_of(settings, credentials.operator_api_key)
    assert (role, scopes) == ("operator", frozenset({"read:models", "write:models"}))
    role, scopes = await _principal_of(settings, credentials.admin_api_key)
    assert role == "admin"
    assert "write:models" in scopes
    assert set(mesh._service_keys) == {"storage", "inference", "tiling", "jobs", "feedback"}
    role, scopes = await _principal_of(settings, mesh._service_keys["jobs"])
    assert (role, scopes) == ("service", frozenset({"internal"}))

    # auth's commands ran as processes; their output went to its log, without the keys.
    log = (tmp_path / "state" / "logs" / "auth.log").read_text()
    for key in (
        credentials.admin_api_key,
        credentials.operator_api_key,
        *mesh._service_keys.values(),
    ):
        assert key not in log
