"""When an access token must be renewed: the bookkeeping shared by every client."""

from __future__ import annotations

from dataclasses import dataclass

from gouache.client.types import Token


@dataclass
class TokenCache:
    """The current access token and when to renew it: refresh_margin_s before it expires,
    or at half its lifetime for a shorter-lived token."""

    refresh_margin_s: float = 60.0
    _token: str = ""
    _renew_at: float = 0.0

    def current(self, now: float) -> str | None:
        """The token, or None when there is none yet or it is due for renewal."""
        if self._token and now < self._renew_at:
            return self._token
        return None

    def store(self, token: Token, issued_at: float) -> str:
        """Keeps a token issued at `issued_at` (a monotonic time) and returns it."""
        self._token = token.access_token
        lifetime = float(token.expires_in)
        self._renew_at = issued_at + lifetime - min(self.refresh_margin_s, lifetime / 2)
        return self._token

    def forget(self) -> bool:
        """Drops the token (the server refused it), so the next call fetches a new one;
        False when there was none (then the API key itself was refused)."""
        held = bool(self._token)
        self._token = ""
        self._renew_at = 0.0
        return held
