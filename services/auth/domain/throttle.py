"""Per-credential throttling of failed sign-ins."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from gouache.runtime.errors import ResourceExhausted


@dataclass
class FailureThrottle:
    """Refuses a credential after `limit` failures within `window_s` (per process)."""

    limit: int = 10
    window_s: float = 60.0
    monotonic: Callable[[], float] = time.monotonic
    _failures: dict[str, deque[float]] = field(default_factory=dict)

    def _recent(self, credential: str) -> deque[float]:
        now = self.monotonic()
        failures = self._failures.get(credential, deque())
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        if failures:
            self._failures[credential] = failures
        else:
            self._failures.pop(credential, None)
        return failures

    def check(self, credential: str) -> None:
        """RESOURCE_EXHAUSTED while the credential is locked out."""
        failures = self._recent(credential)
        if len(failures) >= self.limit:
            wait_s = max(1, int(failures[0] + self.window_s - self.monotonic()) + 1)
            raise ResourceExhausted(
                f"too many failed attempts with these credentials; retry in {wait_s} s",
                reason="too_many_failures",
                retry_after_s=wait_s,
            )

    def record_failure(self, credential: str) -> None:
        failures = self._recent(credential)
        failures.append(self.monotonic())
        self._failures[credential] = failures
        if len(self._failures) > 100_000:
            # Bounded memory under credential stuffing: forget the stalest entries.
            for stale in sorted(self._failures, key=lambda c: self._failures[c][-1])[:50_000]:
                del self._failures[stale]

    def reset(self, credential: str) -> None:
        self._failures.pop(credential, None)
