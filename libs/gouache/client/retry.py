"""When the SDK sends a failed call again: exponential backoff with full jitter, or the
server's Retry-After when it gives one.

Which failures are retried:

- 429 / RESOURCE_EXHAUSTED that says when to retry (`Retry-After`, gRPC `retry-after`):
  a rate limit refused the call before anything ran, so any call may be sent again. One
  that does not say when (a credential locked out after failed attempts) is not retried:
  waiting a few seconds would not help.
- 503 / UNAVAILABLE, and no answer at all (connection refused or reset), only for calls that
  are safe to repeat: reads, cancels, deletes, and creates that carry an idempotency key
  (the SDK gives every create one unless told otherwise), since the first attempt may have
  been carried out before the answer was lost.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from gouache.client.errors import ApiError, RateLimitedError, UnavailableError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How many times and how long to wait before sending a failed call again.

    The n-th retry (n from 0) waits a random time in [0, min(max_backoff_s,
    initial_backoff_s * multiplier**n)] ("full jitter", so that many clients refused at once
    do not come back at once), or the server's Retry-After when given, up to
    max_retry_after_s; a Retry-After longer than that is not waited for: the error is raised.
    """

    max_retries: int = 5
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 20.0
    multiplier: float = 2.0
    max_retry_after_s: float = 60.0
    random: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.initial_backoff_s < 0 or self.max_backoff_s < 0 or self.max_retry_after_s < 0:
            raise ValueError("backoff and Retry-After limits must be >= 0")
        if self.multiplier < 1:
            raise ValueError(f"multiplier must be >= 1, got {self.multiplier}")

    def backoff_s(self, retry: int) -> float:
        """The jittered wait before retry number `retry` (0 for the first retry)."""
        ceiling = min(self.max_backoff_s, self.initial_backoff_s * self.multiplier**retry)
        return ceiling * self.random()

    def delay_s(self, error: ApiError, retry: int, *, repeatable: bool) -> float | None:
        """How long to wait before retry number `retry` after `error`, or None to raise it.

        repeatable: whether sending the call twice is harmless (see the module docstring).
        """
        if retry >= self.max_retries:
            return None
        if isinstance(error, RateLimitedError):
            if error.retry_after_s is None or error.retry_after_s > self.max_retry_after_s:
                return None
            return max(0.0, error.retry_after_s)
        if isinstance(error, UnavailableError) and repeatable:
            if error.retry_after_s is not None and error.retry_after_s <= self.max_retry_after_s:
                return max(0.0, error.retry_after_s)
            return self.backoff_s(retry)
        return None


NO_RETRIES = RetryPolicy(max_retries=0)


def call_with_retries(
    policy: RetryPolicy,
    attempt: Callable[[], T],
    *,
    repeatable: bool,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """attempt(), sent again after each ApiError the policy retries; the last error is raised."""
    retry = 0
    while True:
        try:
            return attempt()
        except ApiError as error:
            delay = policy.delay_s(error, retry, repeatable=repeatable)
            if delay is None:
                raise
        sleep(delay)
        retry += 1


async def acall_with_retries(
    policy: RetryPolicy, attempt: Callable[[], Awaitable[T]], *, repeatable: bool
) -> T:
    """call_with_retries for a coroutine function."""
    retry = 0
    while True:
        try:
            return await attempt()
        except ApiError as error:
            delay = policy.delay_s(error, retry, repeatable=repeatable)
            if delay is None:
                raise
        await asyncio.sleep(delay)
        retry += 1
