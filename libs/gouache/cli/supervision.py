"""When to restart a crashed mesh component: exponential backoff and a crash-loop limit.

Pure decisions on a component's restart history, with the time passed in, so every rule is
tested without processes or clocks. `gouache.cli.supervisor` applies them to processes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class RestartPolicy:
    """How a crashed component is restarted, and when restarting it is given up.

    The first restart waits `initial_backoff_s`; each crash that follows without a healthy
    run of `healthy_after_s` in between doubles the wait, up to `max_backoff_s`. More than
    `max_restarts` crashes within `window_s` seconds is a crash loop: restarting stops.
    """

    initial_backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    multiplier: float = 2.0
    healthy_after_s: float = 60.0
    max_restarts: int = 5
    window_s: float = 300.0

    def __post_init__(self) -> None:
        if self.initial_backoff_s <= 0 or self.max_backoff_s < self.initial_backoff_s:
            raise ValueError("backoff must satisfy 0 < initial_backoff_s <= max_backoff_s")
        if self.multiplier < 1:
            raise ValueError("multiplier must be at least 1")
        if self.healthy_after_s <= 0 or self.window_s <= 0:
            raise ValueError("healthy_after_s and window_s must be positive")
        if self.max_restarts < 0:
            raise ValueError("max_restarts must be 0 or more")

    def backoff(self, streak: int) -> float:
        """The wait before the restart that follows `streak` crashes in a row (1 = first)."""
        delay = self.initial_backoff_s * self.multiplier ** max(streak - 1, 0)
        return min(delay, self.max_backoff_s)


@dataclass(frozen=True)
class RestartHistory:
    """What the supervisor remembers of one component; every transition returns a new one."""

    # When the component crashed, oldest first, within the policy's window.
    crashes: tuple[float, ...] = ()
    # Crashes since the last healthy run of healthy_after_s (sets the backoff).
    streak: int = 0
    # Since when the component has been healthy; None while it is down or starting.
    healthy_since: float | None = None
    restarts: int = 0

    def healthy(self, now: float) -> RestartHistory:
        """The component answers its health check again (after a start or a restart)."""
        return replace(self, healthy_since=now)


@dataclass(frozen=True)
class Restart:
    """Start the component again after `delay_s`; this is its `attempt`-th restart."""

    delay_s: float
    attempt: int


@dataclass(frozen=True)
class GiveUp:
    """The component is crash-looping: stop restarting it."""

    reason: str


Decision = Restart | GiveUp


def on_crash(
    policy: RestartPolicy, history: RestartHistory, now: float
) -> tuple[Decision, RestartHistory]:
    """Decides what follows a crash at `now` (an exit nobody asked for, or a failed start)."""
    streak = history.streak
    if history.healthy_since is not None and now - history.healthy_since >= policy.healthy_after_s:
        streak = 0
    crashes = (*(t for t in history.crashes if now - t < policy.window_s), now)
    updated = replace(history, crashes=crashes, streak=streak + 1, healthy_since=None)
    if len(crashes) > policy.max_restarts:
        reason = (
            f"crashed {len(crashes)} times within {_seconds(policy.window_s)} "
            f"(limit: {policy.max_restarts} restarts)"
        )
        return GiveUp(reason), updated
    updated = replace(updated, restarts=history.restarts + 1)
    return Restart(policy.backoff(updated.streak), updated.restarts), updated


def _seconds(value: float) -> str:
    return f"{value:g} s"
