"""The generic cell rate algorithm: a token bucket kept as one number, pure and clock-free.

The state of a key is its theoretical arrival time (TAT): the moment its bucket would be
full again. A request at `now` costs one emission interval (60 s / per_minute); it is
admitted when the new TAT lies no more than `burst` intervals ahead of `now`. So an idle key
admits `burst` requests at once, then one per interval, and a refused request tells exactly
when the next one will be admitted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Sums of intervals such as 0.1 s drift by a few ulps; a microsecond's tolerance keeps that
# drift from refusing (or hiding) a request the arithmetic admits.
_TOLERANCE_S = 1e-6


@dataclass(frozen=True)
class Rate:
    """`per_minute` requests per minute on average, up to `burst` at once."""

    per_minute: float
    burst: int

    def __post_init__(self) -> None:
        if not self.per_minute > 0 or self.burst < 1:
            raise ValueError("a rate needs per_minute > 0 and burst >= 1")

    @property
    def interval_s(self) -> float:
        """Seconds one request costs: the emission interval."""
        return 60.0 / self.per_minute

    @property
    def refill_s(self) -> float:
        """Seconds an exhausted key needs to admit a full burst again."""
        return self.burst * self.interval_s


@dataclass(frozen=True)
class Decision:
    """The outcome for one request.

    `tat` is the key's state to store when allowed (unchanged when refused);
    `retry_after_s` is 0 when allowed, else the wait until a request is admitted;
    `remaining` is how many more requests would be admitted right now.
    """

    allowed: bool
    tat: float
    retry_after_s: float
    remaining: int


def decide(tat: float | None, now: float, rate: Rate) -> Decision:
    """Admits or refuses one request at `now` for a key whose state is `tat` (None: idle)."""
    interval = rate.interval_s
    current = now if tat is None else max(tat, now)
    new_tat = current + interval
    admit_from = new_tat - rate.refill_s
    if admit_from - now > _TOLERANCE_S:
        return Decision(allowed=False, tat=current, retry_after_s=admit_from - now, remaining=0)
    remaining = max(0, math.floor((now - admit_from + _TOLERANCE_S) / interval))
    return Decision(allowed=True, tat=new_tat, retry_after_s=0.0, remaining=remaining)
