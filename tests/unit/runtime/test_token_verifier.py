"""TokenVerifier: concurrent first requests share one JWKS fetch instead of failing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from gouache.runtime import auth
from gouache.runtime.auth import TokenSettings, TokenVerifier
from gouache.runtime.errors import Unauthenticated, Unavailable
from tests.helpers.tokens import TestSigner


async def test_requests_arriving_during_the_first_fetch_wait_for_it() -> None:
    signer = TestSigner()
    fetches = 0

    async def slow_fetch() -> Sequence[Mapping[str, Any]]:
        nonlocal fetches
        fetches += 1
        await asyncio.sleep(0.2)  # auth answering slowly, as under load
        return signer.jwks()

    verifier = TokenVerifier(slow_fetch)
    principals = await asyncio.gather(*(verifier.verify(signer.token()) for _ in range(5)))
    assert [p.user_id for p in principals] == ["usr_test"] * 5
    assert fetches == 1


async def test_a_failed_fetch_is_not_retried_by_every_request() -> None:
    signer = TestSigner()
    fetches = 0

    async def failing_fetch() -> Sequence[Mapping[str, Any]]:
        nonlocal fetches
        fetches += 1
        raise ConnectionError("auth is down")

    verifier = TokenVerifier(failing_fetch, min_refresh_interval_s=60)
    for _ in range(3):
        with pytest.raises(Unavailable, match="not available yet"):
            await verifier.verify(signer.token())
    assert fetches == 1


class CountingDecode:
    """Counts full verifications (jwt.decode) behind the verifier's memory."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        real = auth.jwt.decode

        def decode(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(auth.jwt, "decode", decode)


async def test_a_token_verified_once_is_not_verified_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    signer = TestSigner()
    decodes = CountingDecode(monkeypatch)
    verifier = TokenVerifier(signer.fetch)
    token = signer.token(extra={"plan": "pro"})

    first = await verifier.verify(token)
    again = [await verifier.verify(token) for _ in range(5)]

    assert decodes.calls == 1
    assert all(p == first for p in again)
    assert first.plan == "pro"
    await verifier.verify(signer.token())
    assert decodes.calls == 2


async def test_a_remembered_token_past_its_expiry_is_verified_afresh(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    signer = TestSigner()
    decodes = CountingDecode(monkeypatch)
    now = [time.time()]
    verifier = TokenVerifier(signer.fetch, clock=lambda: now[0])
    token = signer.token(ttl_s=60)
    await verifier.verify(token)
    now[0] += 60 + TokenSettings().leeway_s - 1
    await verifier.verify(token)
    assert decodes.calls == 1
    now[0] += 2

    # PyJWT checks the expiry again, on its own clock.
    await verifier.verify(token)

    assert decodes.calls == 2


async def test_a_remembered_token_whose_key_was_rotated_out_is_refused() -> None:
    old, new = TestSigner("key-1"), TestSigner("key-2")
    published = [old]

    async def fetch() -> Sequence[Mapping[str, Any]]:
        return [jwk for signer in published for jwk in signer.jwks()]

    verifier = TokenVerifier(fetch, min_refresh_interval_s=0)
    token = old.token()
    await verifier.verify(token)
    published[:] = [new]
    await verifier.refresh()

    with pytest.raises(Unauthenticated, match="unknown key"):
        await verifier.verify(token)
    assert (await verifier.verify(new.token())).user_id == "usr_test"


async def test_the_memory_keeps_the_most_recently_used_tokens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    signer = TestSigner()
    decodes = CountingDecode(monkeypatch)
    verifier = TokenVerifier(signer.fetch, cache_size=2)
    a, b, c = (signer.token(sub=f"usr_{name}") for name in "abc")
    for token in (a, b, a, c):
        await verifier.verify(token)
    assert decodes.calls == 3
    await verifier.verify(a)
    assert decodes.calls == 3
    await verifier.verify(b)
    assert decodes.calls == 4
