"""Per-user token buckets: a steady rate with bursts, as the API's rate limit."""

from __future__ import annotations

from dataclasses import dataclass

from gouache.runtime.errors import ResourceExhausted


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBucketLimiter:
    """Allows `per_minute` requests per key on average and up to `burst` at once.

    Time is passed in (monotonic seconds), which keeps the limiter deterministic to test.
    Keys whose buckets are full again are forgotten, so memory follows active users.
    """

    def __init__(self, per_minute: float, burst: int, *, max_keys: int = 100_000) -> None:
        if per_minute <= 0 or burst < 1:
            raise ValueError("a rate limit needs per_minute > 0 and burst >= 1")
        self.per_minute = per_minute
        self.burst = burst
        self._rate = per_minute / 60.0
        self._buckets: dict[str, _Bucket] = {}
        self._max_keys = max_keys

    def retry_after(self, key: str, now: float) -> float:
        """Takes a token for key; returns 0 if allowed, else seconds until one is free."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:
                self._forget_full(now)
            bucket = self._buckets[key] = _Bucket(tokens=float(self.burst), updated=now)
        elapsed = max(0.0, now - bucket.updated)
        bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self._rate)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self._rate

    def acquire(self, key: str, now: float) -> None:
        """Takes a token for key or raises RESOURCE_EXHAUSTED saying when to retry."""
        wait = self.retry_after(key, now)
        if wait > 0:
            raise ResourceExhausted(
                f"rate limit of {self.per_minute:g} requests per minute exceeded; retry in "
                f"{wait:.1f} s",
                reason="rate_limited",
            )

    def _forget_full(self, now: float) -> None:
        for key, bucket in list(self._buckets.items()):
            if bucket.tokens + (now - bucket.updated) * self._rate >= self.burst:
                del self._buckets[key]
