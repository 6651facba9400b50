"""Settings of the auth service, read once from GOUACHE_AUTH_* variables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from gouache.runtime.settings import ServiceSettings


class AuthSettings(ServiceSettings):
    """Where users and keys live, and how long tokens last."""

    model_config = SettingsConfigDict(env_prefix="GOUACHE_AUTH_", frozen=True, extra="ignore")

    port: int = 50051
    # Holds the SQLite database when database_url is not set.
    state_dir: Path = Path(".gouache/state")
    # sqlite+aiosqlite:///path.db (embedded) or postgresql+asyncpg://... (production).
    database_url: str = ""
    # Lifetime of access tokens, in seconds.
    token_ttl_s: int = 900
    # Encrypts signing private keys at rest (PKCS#8, scrypt + AES); empty stores them
    # unencrypted, which is acceptable only when the database itself is private.
    signing_key_passphrase: SecretStr = SecretStr("")
    # How often a running service re-reads signing keys (rotation by another process).
    key_refresh_s: float = 60.0
    # scrypt cost of new password hashes (existing hashes carry their own).
    scrypt_n: int = 2**15
    scrypt_r: int = 8
    scrypt_p: int = 3
    # Failed IssueToken attempts allowed per credential within the window.
    max_failed_logins: int = 10
    failed_login_window_s: float = 60.0

    @model_validator(mode="before")
    @classmethod
    def _default_database_url(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("database_url"):
            state_dir = Path(data.get("state_dir") or Path(".gouache/state"))
            data = {**data, "database_url": f"sqlite+aiosqlite:///{state_dir}/auth.db"}
        return data

    def sqlite_path(self) -> Path | None:
        """The SQLite file behind database_url, if it is one (its folder must exist)."""
        prefix = "sqlite+aiosqlite:///"
        if self.database_url.startswith(prefix):
            return Path(self.database_url[len(prefix) :])
        return None
