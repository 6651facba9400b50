"""What the reconciler observed and what it must make true: the state machine's inputs and outputs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from gouache_operator.domain.analysis import Quality, VersionStats
from gouache_operator.domain.placement import Admission
from gouache_operator.domain.spec import InvalidSpec, VersionSpec
from gouache_operator.domain.status import Phase, Status

ACTION_ANNOTATION = "gouache.dev/action"
ACTIONS = ("promote", "abort", "retry")

Route = tuple[tuple[str, int], ...]
"""An alias's targets: (model version, weight 0-100), as the jobs routing table holds them."""


@dataclass(frozen=True)
class Peer:
    """Another ModelVersion of the same alias in the namespace."""

    name: str
    version: str
    phase: Phase
    created: datetime
    promoted_at: datetime | None = None
    stable_version: str = ""


@dataclass(frozen=True)
class DeploymentState:
    """The version's inference Deployment as the cluster reports it."""

    replicas: int
    available: int
    unschedulable: str = ""


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post on the resource."""

    reason: str
    message: str
    warning: bool = False


@dataclass(frozen=True)
class Observation:
    """What the reconciler saw this tick; fields it did not need to look at stay empty."""

    now: datetime
    name: str
    created: datetime
    generation: int
    spec: VersionSpec | InvalidSpec
    status: Status
    action: str = ""
    peers: tuple[Peer, ...] = ()
    problem: InvalidSpec | None = None
    admission: Admission | None = None
    deployment: DeploymentState | None = None
    endpoint: str = ""
    endpoint_ready: bool = False
    route: Route | None = None
    quality: Quality | None = None
    stable_quality: Quality | None = None
    stats: VersionStats | None = None
    stable_stats: VersionStats | None = None


@dataclass(frozen=True)
class Decision:
    """What the reconciler makes true, in order: status, Deployment, registration, route.

    `replicas` None leaves the Deployment alone (and creates none); `route` None leaves
    the alias's route alone. `register` asks for the version to be registered in the
    jobs routing table with its endpoint.
    """

    status: Status
    replicas: int | None = None
    register: bool = False
    route: Route | None = None
    events: tuple[Event, ...] = ()
    clear_action: bool = False


# -- what the reconciler must look at ------------------------------------------------------


def analysis_due(status: Status, spec: VersionSpec, now: datetime) -> bool:
    """Whether a phase that analyses is due for a check (stats must then be observed)."""
    if status.phase not in (Phase.CANARY, Phase.FROZEN, Phase.PROMOTING):
        return False
    last = status.analysis
    return last is None or now - last.time >= timedelta(seconds=spec.rollout.analysis.interval_s)


def stats_since(status: Status, spec: VersionSpec, now: datetime) -> datetime:
    """Start of the analysis window: the window's length back, never before this stage began."""
    baking = status.phase is Phase.PROMOTING or (
        status.phase is Phase.FROZEN and status.promoted_at is not None
    )
    began = status.promoted_at if baking else status.canary_started_at
    floor = now - timedelta(seconds=spec.rollout.analysis.window_s)
    return max(began, floor) if began is not None else floor


def needs_quality(status: Status) -> bool:
    """Whether the version's golden-set quality is still to be measured (once, when ready)."""
    return status.phase in (Phase.PLACING, Phase.WARMING) and status.quality is None


def needs_stable_quality(status: Status) -> bool:
    """Whether the stable version's quality is still missing (its inference was unreachable)."""
    return status.phase in (Phase.CANARY, Phase.FROZEN) and status.stable_quality is None


def stable_from_route(route: Route | None, version: str) -> str:
    """The version an alias serves besides `version`: its heaviest positive target, or ""."""
    others = [(weight, name) for name, weight in route or () if name != version and weight > 0]
    return max(others)[1] if others else ""


def route_weight(route: Route | None, version: str) -> int:
    """The weight `version` has in a route (0 when absent)."""
    return next((weight for name, weight in route or () if name == version), 0)
