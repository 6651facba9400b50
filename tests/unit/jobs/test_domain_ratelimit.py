"""The per-user token bucket."""

from __future__ import annotations

import pytest

from gouache.runtime.errors import ResourceExhausted
from services.jobs.domain.ratelimit import TokenBucketLimiter


def test_burst_then_steady_rate() -> None:
    limiter = TokenBucketLimiter(per_minute=60, burst=3)
    assert [limiter.retry_after("u", 0.0) for _ in range(3)] == [0, 0, 0]
    assert limiter.retry_after("u", 0.0) == pytest.approx(1.0)
    assert limiter.retry_after("u", 0.5) == pytest.approx(0.5)
    assert limiter.retry_after("u", 1.0) == 0


def test_users_have_their_own_buckets() -> None:
    limiter = TokenBucketLimiter(per_minute=60, burst=1)
    limiter.acquire("a", 0.0)
    limiter.acquire("b", 0.0)
    with pytest.raises(ResourceExhausted, match=r"60 requests per minute exceeded; retry in 1.0 s"):
        limiter.acquire("a", 0.0)


def test_refill_is_capped_at_the_burst() -> None:
    limiter = TokenBucketLimiter(per_minute=60, burst=2)
    limiter.acquire("u", 0.0)
    for _ in range(2):
        limiter.acquire("u", 1000.0)
    assert limiter.retry_after("u", 1000.0) > 0


def test_full_buckets_are_forgotten() -> None:
    limiter = TokenBucketLimiter(per_minute=60, burst=1, max_keys=2)
    limiter.acquire("a", 0.0)
    limiter.acquire("b", 0.0)
    limiter.acquire("c", 10.0)
    assert limiter.retry_after("c", 10.0) > 0
    assert len(limiter._buckets) == 1


def test_bad_configuration() -> None:
    with pytest.raises(ValueError, match="per_minute > 0"):
        TokenBucketLimiter(per_minute=0, burst=1)
