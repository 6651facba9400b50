"""TokenVerifier: concurrent first requests share one JWKS fetch instead of failing."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from gouache.runtime.auth import TokenVerifier
from gouache.runtime.errors import Unavailable
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
