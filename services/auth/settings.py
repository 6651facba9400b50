"""Settings of the auth service, read once from GOUACHE_AUTH_* variables."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

from pydantic import SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from gouache.runtime.settings import ServiceSettings
from services.auth.oidc import DEFAULT_ALGORITHMS


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
    # Single sign-on (services/auth/oidc.py): JWTs of this OpenID Connect issuer, for this
    # audience, verified with the keys at its JWKS URL, are exchanged at the token endpoint
    # (grant_type urn:ietf:params:oauth:grant-type:jwt-bearer). All three or none.
    oidc_issuer: str = ""
    oidc_jwks_url: str = ""
    oidc_audience: str = ""
    # The claims that hold the email (which names the gouache user) and the display name.
    oidc_email_claim: str = "email"
    oidc_name_claim: str = "name"
    # Signature algorithms accepted, comma-separated (asymmetric only).
    oidc_algorithms: str = "RS256,RS384,RS512,PS256,ES256,ES384,EdDSA"
    # Whether a person the issuer vouches for, unknown to gouache, becomes a user (role user).
    oidc_create_users: bool = True

    @model_validator(mode="before")
    @classmethod
    def _default_database_url(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("database_url"):
            state_dir = Path(data.get("state_dir") or Path(".gouache/state"))
            data = {**data, "database_url": f"sqlite+aiosqlite:///{state_dir}/auth.db"}
        return data

    @model_validator(mode="after")
    def _oidc_complete(self) -> Self:
        parts = {
            "GOUACHE_AUTH_OIDC_ISSUER": self.oidc_issuer,
            "GOUACHE_AUTH_OIDC_JWKS_URL": self.oidc_jwks_url,
            "GOUACHE_AUTH_OIDC_AUDIENCE": self.oidc_audience,
        }
        missing = [name for name, value in parts.items() if not value.strip()]
        if missing and len(missing) < len(parts):
            raise ValueError(f"single sign-on needs {', '.join(missing)} too (all three or none)")
        if self.oidc_jwks_url:
            url = urlsplit(self.oidc_jwks_url)
            loopback = url.hostname in ("127.0.0.1", "localhost", "::1")
            if url.scheme != "https" and not (url.scheme == "http" and loopback):
                raise ValueError(
                    "GOUACHE_AUTH_OIDC_JWKS_URL must be https:// (plain http only on loopback), "
                    f"got {self.oidc_jwks_url!r}"
                )
        unknown = set(self.oidc_algorithm_list()) - set(DEFAULT_ALGORITHMS)
        if unknown:
            raise ValueError(
                f"GOUACHE_AUTH_OIDC_ALGORITHMS: {', '.join(sorted(unknown))} not accepted; "
                f"choose from {', '.join(DEFAULT_ALGORITHMS)}"
            )
        return self

    def oidc_algorithm_list(self) -> tuple[str, ...]:
        return tuple(a.strip() for a in self.oidc_algorithms.split(",") if a.strip())

    def sqlite_path(self) -> Path | None:
        """The SQLite file behind database_url, if it is one (its folder must exist)."""
        prefix = "sqlite+aiosqlite:///"
        if self.database_url.startswith(prefix):
            return Path(self.database_url[len(prefix) :])
        return None
