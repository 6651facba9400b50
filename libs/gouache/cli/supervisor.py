"""Keeps a running mesh up: restarts components that exit, with backoff, until they loop.

`Supervisor.tick()` is called in `gouache up`'s main loop; it never sleeps. Each component
is running, waiting out its backoff, or starting again (its process launched, its health
not yet confirmed), so one component's restart never holds up watching the others. The
decisions (how long to wait, when to give up) come from `gouache.cli.supervision`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from gouache.cli.components import Component, ExitStatus
from gouache.cli.mesh import Mesh
from gouache.cli.supervision import GiveUp, RestartHistory, RestartPolicy, on_crash


@dataclass(frozen=True)
class Crashed:
    """A component ended (or failed to come back); it restarts after `delay_s`."""

    name: str
    why: str
    delay_s: float
    attempt: int

    def line(self) -> str:
        return (
            f"↻ {self.name} {self.why}; restarting in {self.delay_s:g} s (restart {self.attempt})"
        )


@dataclass(frozen=True)
class Recovered:
    """A restarted component answers its health check again."""

    name: str
    down_s: float
    attempt: int

    def line(self) -> str:
        return f"✓ {self.name} back after {self.down_s:.1f} s"


@dataclass(frozen=True)
class GaveUp:
    """A component crash-loops: the mesh stops."""

    name: str
    why: str
    reason: str
    log: str

    def line(self) -> str:
        return (
            f"✗ {self.name} {self.why}; {self.reason}: giving up on it and stopping the mesh "
            f"(every component is needed to serve jobs); see {self.log}"
        )


SupervisionEvent = Crashed | Recovered | GaveUp


class _State(Enum):
    RUNNING = "running"
    WAITING = "waiting"
    STARTING = "starting"


@dataclass
class _Watch:
    state: _State = _State.RUNNING
    history: RestartHistory = field(default_factory=RestartHistory)
    # When the component went down (for "back after"), when to relaunch, when to give up
    # waiting for its health.
    down_since: float = 0.0
    restart_at: float = 0.0
    start_deadline: float = 0.0
    attempt: int = 0


class Supervisor:
    """Watches every component of a started mesh and restarts those that end."""

    def __init__(
        self,
        mesh: Mesh,
        policy: RestartPolicy,
        notify: Callable[[SupervisionEvent], None],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._mesh = mesh
        self._policy = policy
        self._notify = notify
        self._clock = clock
        now = clock()
        self._watches = {
            c.name: _Watch(history=RestartHistory().healthy(now)) for c in mesh.components
        }
        self.gave_up: GaveUp | None = None

    def tick(self) -> GaveUp | None:
        """Checks every component once; the GaveUp that stops the mesh, if one crash-loops."""
        for name, watch in self._watches.items():
            if self.gave_up is not None:
                break
            now = self._clock()
            component = self._mesh.component(name)
            if watch.state is _State.RUNNING:
                ended = component.exit_status()
                if ended is not None:
                    self._crashed(name, watch, f"exited ({ended.describe()})", now, now)
            elif watch.state is _State.WAITING:
                if now >= watch.restart_at:
                    self._relaunch(name, watch, now)
            else:
                self._check_start(name, watch, component, now)
        return self.gave_up

    def _check_start(self, name: str, watch: _Watch, component: Component, now: float) -> None:
        ended: ExitStatus | None = component.exit_status()
        if ended is not None:
            self._crashed(name, watch, f"exited ({ended.describe()}) while starting", now)
        elif self._mesh.healthy(component):
            now = self._clock()
            watch.state = _State.RUNNING
            watch.history = watch.history.healthy(now)
            component.status = "ready"
            self._notify(Recovered(name, now - watch.down_since, watch.attempt))
        elif now > watch.start_deadline:
            timeout = self._mesh.config.startup_timeout_s
            self._crashed(name, watch, f"not healthy {timeout:g} s after its restart", now)

    def _crashed(
        self, name: str, watch: _Watch, why: str, now: float, down_since: float | None = None
    ) -> None:
        if down_since is not None:
            watch.down_since = down_since
        decision, watch.history = on_crash(self._policy, watch.history, now)
        component = self._mesh.component(name)
        component.status = "crashed"
        if isinstance(decision, GiveUp):
            log = str(self._mesh.config.state_dir / "logs" / f"{name}.log")
            self.gave_up = GaveUp(name, why, decision.reason, log)
            self._notify(self.gave_up)
            return
        watch.state = _State.WAITING
        watch.restart_at = now + decision.delay_s
        watch.attempt = decision.attempt
        self._notify(Crashed(name, why, decision.delay_s, decision.attempt))

    def _relaunch(self, name: str, watch: _Watch, now: float) -> None:
        try:
            self._mesh.relaunch(name)
        except (OSError, RuntimeError) as exc:
            self._crashed(name, watch, f"could not be started ({exc})", now)
            return
        watch.state = _State.STARTING
        watch.start_deadline = now + self._mesh.config.startup_timeout_s
