"""The rollout state machine: from what was observed, the next status and what to make true.

`decide` is a pure function of an `Observation` (the resource, its peers for the same
alias, the pool's verdict, the Deployment, the alias's route, fresh measurements) and
returns a `Decision`: the new status, the Deployment's replicas, the route the alias must
have, and the Events to post. The reconciler gathers the observation and applies the
decision; every part of a decision is idempotent and derived from the status, so an
operator killed between writing the status and applying the rest redoes the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from gouache_operator.domain.analysis import (
    Baseline,
    Check,
    Quality,
    Verdict,
    VersionStats,
    analyse,
)
from gouache_operator.domain.placement import Admission
from gouache_operator.domain.spec import InvalidSpec, VersionSpec
from gouache_operator.domain.status import (
    ANALYSIS,
    PLACED,
    READY,
    ROLLING,
    SERVING,
    AnalysisRecord,
    Phase,
    Placement,
    Status,
)

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


# -- the state machine ---------------------------------------------------------------------


def decide(obs: Observation) -> Decision:
    """The next status and the world it needs, from one observation."""
    status = obs.status
    events: list[Event] = []
    action = obs.action.strip().lower()
    if action and action not in ACTIONS:
        events.append(
            Event(
                "UnknownAction",
                f"{obs.action!r} is not an action; use one of {', '.join(ACTIONS)}",
                warning=True,
            )
        )
        action = ""
    if isinstance(obs.spec, InvalidSpec):
        return _with(_failed(obs, status, obs.spec), events, obs)
    spec = obs.spec
    if status.observed_generation != obs.generation:
        if status.phase in (Phase.FAILED, Phase.ROLLED_BACK) and status.observed_generation:
            status = _restart(status)
            events.append(Event("Restarted", "the spec changed: the rollout starts again"))
        status = replace(status, observed_generation=obs.generation)
    if action == "retry":
        if status.phase in (Phase.FAILED, Phase.ROLLED_BACK):
            status = _restart(status)
            events.append(Event("Restarted", "retry asked by hand: the rollout starts again"))
        else:
            events.append(_ignored(action, status))
        action = ""
    handler = _HANDLERS[status.phase]
    return _with(handler(obs, spec, status, action), events, obs)


def _with(decision: Decision, events: list[Event], obs: Observation) -> Decision:
    return replace(
        decision,
        events=(*events, *decision.events),
        clear_action=bool(obs.action),
    )


def _ignored(action: str, status: Status) -> Event:
    return Event(
        "ActionIgnored",
        f"action {action!r} does not apply to a version in phase {status.phase.value}",
        warning=True,
    )


def _restart(status: Status) -> Status:
    return Status(observed_generation=status.observed_generation)


def _failed(obs: Observation, status: Status, problem: InvalidSpec) -> Decision:
    """Phase Failed with the problem on the Ready condition; GPUs released, traffic removed."""
    changed = status.phase is not Phase.FAILED or status.message != problem.message
    failed = replace(
        status,
        phase=Phase.FAILED,
        message=problem.message,
        weight=0,
        finished_at=status.finished_at if status.phase is Phase.FAILED else obs.now,
        observed_generation=obs.generation,
    ).with_condition(READY, False, problem.reason, problem.message, obs.now)
    return Decision(
        status=failed,
        replicas=0 if status.placement is not None else None,
        route=_without_me(obs, status),
        events=(Event(problem.reason, problem.message, warning=True),) if changed else (),
    )


def _without_me(obs: Observation, status: Status) -> Route | None:
    """The route with this version's traffic given back to stable, if it still has some."""
    version = obs.spec.version if isinstance(obs.spec, VersionSpec) else ""
    if not version or route_weight(obs.route, version) <= 0:
        return None
    stable = status.stable_version or stable_from_route(obs.route, version)
    return ((stable, 100),) if stable else None


def _pending(obs: Observation, spec: VersionSpec, status: Status, action: str) -> Decision:
    events = [_ignored(action, status)] if action and action != "abort" else []
    if action == "abort":
        return _failed(obs, status, InvalidSpec("Aborted", "aborted by hand before placement"))
    if obs.problem is not None:
        return _failed(obs, status, obs.problem)
    ahead = _rollout_ahead(obs)
    if ahead is not None:
        message = (
            f"waiting: alias {spec.alias} has a rollout in progress (ModelVersion {ahead.name}, "
            f"version {ahead.version}, {ahead.phase.value}); one version at a time"
        )
        waiting = replace(status, phase=Phase.PENDING, message=message).with_condition(
            PLACED, False, "WaitingForRollout", message, obs.now
        )
        return Decision(status=waiting, events=tuple(events))
    admission = obs.admission
    if admission is None or not admission.fits:
        reason = admission.reason if admission is not None else "PoolUnknown"
        message = admission.message if admission is not None else "pool capacity unknown"
        previous = status.condition(PLACED)
        new_reason = previous is None or previous.reason != reason
        waiting = replace(status, phase=Phase.PENDING, message=message).with_condition(
            PLACED, False, reason, message, obs.now
        )
        if new_reason:
            events.append(Event(reason, message, warning=True))
        return Decision(status=waiting, events=tuple(events))
    placed = replace(
        status,
        phase=Phase.PLACING,
        message=f"placed: {admission.message}",
        placed_at=obs.now,
        finished_at=None,
        placement=Placement(
            pool=spec.pool,
            replicas=spec.replicas_min,
            gpus_per_replica=admission.gpus_per_replica,
            gpu_memory_gib=spec.gpu_memory_gib,
        ),
    ).with_condition(PLACED, True, "Placed", admission.message, obs.now)
    events.append(Event("Placed", admission.message))
    return Decision(status=placed, replicas=spec.replicas_min, events=tuple(events))


def _rollout_ahead(obs: Observation) -> Peer | None:
    """A peer whose rollout goes first: one baking its promotion, or earlier in the queue."""
    mine = (obs.created, obs.name)
    for peer in sorted(obs.peers, key=lambda p: (p.created, p.name)):
        if peer.phase is Phase.PROMOTING:
            return peer
        if peer.phase in ROLLING and (peer.created, peer.name) < mine:
            return peer
    return None


def _warming(obs: Observation, spec: VersionSpec, status: Status, action: str) -> Decision:
    """Placing and Warming: wait for replicas, the endpoint and the quality measurement."""
    if action == "abort":
        return _roll_back(obs, spec, status, "Aborted", "aborted by hand while warming up")
    events = [_ignored(action, status)] if action else []
    deadline = (status.placed_at or obs.now) + timedelta(seconds=spec.rollout.progress_deadline_s)
    ready_condition = status.condition(READY)
    if obs.now > deadline:
        why = ready_condition.message if ready_condition is not None else "not ready"
        return _failed(
            obs,
            status,
            InvalidSpec(
                "ProgressDeadlineExceeded",
                f"not ready within {spec.rollout.progress_deadline_s:g}s of placement: {why}",
            ),
        )
    base = Decision(status=status, replicas=spec.replicas_min, events=tuple(events))
    deployment = obs.deployment
    if deployment is None or deployment.available < spec.replicas_min:
        if deployment is not None and deployment.unschedulable:
            phase, reason, message = Phase.PLACING, "Unschedulable", deployment.unschedulable
        elif deployment is None:
            phase, reason, message = Phase.PLACING, "Creating", "creating the inference Deployment"
        else:
            phase, reason = Phase.WARMING, "ReplicasNotReady"
            message = f"{deployment.available}/{spec.replicas_min} inference replicas available"
        waiting = replace(status, phase=phase, message=message).with_condition(
            READY, False, reason, message, obs.now
        )
        return replace(base, status=waiting)
    if not obs.endpoint_ready:
        message = f"inference at {obs.endpoint} does not report {spec.version} ready yet"
        waiting = replace(status, phase=Phase.WARMING, message=message).with_condition(
            READY, False, "EndpointNotReady", message, obs.now
        )
        return replace(base, status=waiting)
    quality = status.quality or obs.quality
    if quality is None:
        message = "measuring quality on the golden set"
        waiting = replace(status, phase=Phase.WARMING, message=message, endpoint=obs.endpoint)
        return replace(base, status=waiting, register=True)
    ready = replace(
        status,
        endpoint=obs.endpoint,
        quality=quality,
        stable_quality=status.stable_quality or obs.stable_quality,
    ).with_condition(READY, True, "Ready", f"serving at {obs.endpoint}", obs.now)
    if status.restoring:
        return _restored(obs, spec, ready, base)
    stable = stable_from_route(obs.route, spec.version)
    if not stable:
        message = (
            f"first version of alias {spec.alias}: it takes all the alias's traffic "
            "(no stable version to compare with)"
        )
        serving = replace(
            ready,
            phase=Phase.STABLE,
            message=message,
            weight=100,
            promoted_at=obs.now,
        ).with_condition(ANALYSIS, True, "Initialized", message, obs.now)
        return replace(
            base,
            status=serving,
            register=True,
            route=((spec.version, 100),),
            events=(*base.events, Event("Initialized", message)),
        )
    first = spec.rollout.steps[0]
    message = f"canary step 1/{len(spec.rollout.steps)}: {first.weight}% of alias {spec.alias}"
    canary = replace(
        ready,
        phase=Phase.CANARY,
        message=message,
        weight=first.weight,
        step=0,
        stable_version=stable,
        canary_started_at=obs.now,
        step_started_at=obs.now,
        failed_checks=0,
        analysis=None,
    ).with_condition(ANALYSIS, None, "Started", "no analysis yet", obs.now)
    return replace(
        base,
        status=canary,
        register=True,
        route=_canary_route(stable, spec.version, first.weight),
        events=(
            *base.events,
            Event("CanaryStarted", f"{message}; stable version {stable} keeps the rest"),
        ),
    )


def _restored(obs: Observation, spec: VersionSpec, ready: Status, base: Decision) -> Decision:
    message = f"restored: serves all of alias {spec.alias} again (promoted by hand)"
    serving = replace(
        ready, phase=Phase.STABLE, message=message, weight=100, promoted_at=obs.now, restoring=False
    )
    return replace(
        base,
        status=serving,
        register=True,
        route=((spec.version, 100),),
        events=(*base.events, Event("Restored", message)),
    )


def _canary_route(stable: str, version: str, weight: int) -> Route:
    return ((stable, 100 - weight), (version, weight))


def _analysed(
    obs: Observation, spec: VersionSpec, status: Status, *, counting: bool
) -> tuple[Status, list[Event], Check | None]:
    """The status after this tick's analysis (if one was due), and its Events.

    During a canary the baseline is the stable version's window, kept in the status so
    a promotion can freeze it; during the bake it is that frozen baseline.
    """
    if obs.stats is None:
        return status, [], None
    deployment = obs.deployment
    available = deployment is not None and deployment.available >= spec.replicas_min
    if status.phase is Phase.PROMOTING or (status.phase is Phase.FROZEN and status.promoted_at):
        baseline = status.baseline or Baseline()
    else:
        baseline = Baseline.of(obs.stable_stats or VersionStats(), status.stable_quality)
        status = replace(status, baseline=baseline)
    check = analyse(
        obs.stats,
        baseline,
        spec.rollout.analysis,
        quality=status.quality,
        available=available,
    )
    limit = spec.rollout.analysis.failure_limit
    failed = status.failed_checks + (1 if counting and check.verdict is Verdict.FAIL else 0)
    status = replace(
        status, analysis=AnalysisRecord(time=obs.now, check=check), failed_checks=failed
    )
    events: list[Event] = []
    summary = check.summary()
    if check.verdict is Verdict.FAIL:
        status = status.with_condition(
            ANALYSIS, False, "ChecksFailing", f"{failed}/{limit} failed checks: {summary}", obs.now
        )
        events.append(Event("AnalysisFailed", f"check {failed}/{limit} failed: {summary}", True))
    elif check.verdict is Verdict.PASS:
        status = status.with_condition(ANALYSIS, True, "Passing", summary, obs.now)
    else:
        status = status.with_condition(ANALYSIS, None, "Inconclusive", summary, obs.now)
    return status, events, check


def _canary(obs: Observation, spec: VersionSpec, status: Status, action: str) -> Decision:
    steps = spec.rollout.steps
    step = min(status.step, len(steps) - 1)
    weight = steps[step].weight
    status = replace(status, step=step, weight=weight)
    if action == "abort":
        return _roll_back(obs, spec, status, "Aborted", "aborted by hand during the canary")
    if action == "promote":
        return _promote(obs, spec, status, "promoted by hand")
    if status.stable_quality is None and obs.stable_quality is not None:
        status = replace(status, stable_quality=obs.stable_quality)
    base = Decision(
        status=status,
        replicas=spec.replicas_min,
        register=True,
        route=_canary_route(status.stable_version, spec.version, weight),
    )
    deployment = obs.deployment
    available = deployment is not None and deployment.available >= spec.replicas_min
    if available:
        status = replace(status, unavailable_since=None)
    else:
        since = status.unavailable_since or obs.now
        status = replace(status, unavailable_since=since)
        lost = f"{deployment.available if deployment else 0}/{spec.replicas_min} replicas available"
        status = status.with_condition(READY, False, "ReplicasUnavailable", lost, obs.now)
        if (obs.now - since).total_seconds() > spec.rollout.progress_deadline_s:
            return _roll_back(
                obs,
                spec,
                status,
                "CanaryUnavailable",
                f"the canary lost its replicas for over {spec.rollout.progress_deadline_s:g}s "
                f"({lost})",
            )
    ready = status.condition(READY)
    if available and (ready is None or ready.status != "True"):
        status = status.with_condition(
            READY, True, "Ready", f"serving at {status.endpoint}", obs.now
        )
    status, events, check = _analysed(obs, spec, status, counting=True)
    limit = spec.rollout.analysis.failure_limit
    if check is not None and status.failed_checks >= limit:
        why = f"{status.failed_checks} of {limit} checks failed; last: {check.summary()}"
        if spec.rollout.on_failure == "freeze":
            return _freeze(obs, spec, status, why, events)
        decision = _roll_back(obs, spec, status, "AnalysisFailed", why)
        return replace(decision, events=(*events, *decision.events))
    last = status.analysis
    held = (obs.now - (status.step_started_at or obs.now)).total_seconds()
    passed = (
        last is not None
        and last.check.verdict is Verdict.PASS
        and status.step_started_at is not None
        and last.time >= status.step_started_at
    )
    if not spec.paused and passed and held >= steps[step].pause_s:
        if step + 1 < len(steps):
            nxt = steps[step + 1]
            message = f"canary step {step + 2}/{len(steps)}: {nxt.weight}% of alias {spec.alias}"
            advanced = replace(
                status, step=step + 1, weight=nxt.weight, step_started_at=obs.now, message=message
            )
            events.append(Event("StepAdvanced", message))
            return replace(
                base,
                status=advanced,
                route=_canary_route(status.stable_version, spec.version, nxt.weight),
                events=tuple(events),
            )
        decision = _promote(obs, spec, status, f"all {len(steps)} steps passed")
        return replace(decision, events=(*events, *decision.events))
    message = f"canary step {step + 1}/{len(steps)}: {weight}% of alias {spec.alias}"
    if spec.paused:
        message += "; paused (spec.paused): checks run, steps wait"
    elif last is not None:
        message += f"; last check {last.check.verdict.value.lower()}"
    return replace(base, status=replace(status, message=message), events=tuple(events))


def _promote(obs: Observation, spec: VersionSpec, status: Status, why: str) -> Decision:
    """Weight 100; the bake follows (or Stable at once when the bake is zero)."""
    stable = status.stable_version
    baking = spec.rollout.bake_s > 0
    message = f"promoted ({why}): 100% of alias {spec.alias}" + (
        f"; baking {spec.rollout.bake_s:g}s with {stable} kept warm" if baking else ""
    )
    promoted = replace(
        status,
        phase=Phase.PROMOTING if baking else Phase.STABLE,
        weight=100,
        promoted_at=obs.now,
        failed_checks=0,
        message=message,
    ).with_condition(ANALYSIS, True, "Promoted", message, obs.now)
    route: Route = ((spec.version, 100), (stable, 0)) if stable else ((spec.version, 100),)
    return Decision(
        status=promoted,
        replicas=spec.replicas_min,
        register=True,
        route=route,
        events=(Event("Promoted", message),),
    )


def _promoting(obs: Observation, spec: VersionSpec, status: Status, action: str) -> Decision:
    """The bake: 100% on this version, N-1 warm; the same gates against N-1's baseline."""
    stable = status.stable_version
    route: Route = ((spec.version, 100), (stable, 0)) if stable else ((spec.version, 100),)
    if action == "abort":
        return _roll_back(obs, spec, status, "Aborted", "aborted by hand during the bake")
    if action == "promote":
        return _bake_done(obs, spec, status, route, "bake ended by hand")
    status, events, check = _analysed(obs, spec, status, counting=True)
    limit = spec.rollout.analysis.failure_limit
    if check is not None and status.failed_checks >= limit:
        why = (
            f"after promotion, {status.failed_checks} of {limit} checks failed against "
            f"{stable}'s baseline; last: {check.summary()}"
        )
        if spec.rollout.on_failure == "freeze":
            return _freeze(obs, spec, status, why, events)
        decision = _roll_back(obs, spec, status, "BakeFailed", why)
        return replace(decision, events=(*events, *decision.events))
    bake_end = (status.promoted_at or obs.now) + timedelta(seconds=spec.rollout.bake_s)
    if obs.now >= bake_end:
        decision = _bake_done(obs, spec, status, route, f"baked {spec.rollout.bake_s:g}s")
        return replace(decision, events=(*events, *decision.events))
    return Decision(
        status=status,
        replicas=spec.replicas_min,
        register=True,
        route=route,
        events=tuple(events),
    )


def _bake_done(
    obs: Observation, spec: VersionSpec, status: Status, route: Route, why: str
) -> Decision:
    message = f"stable: serves alias {spec.alias} ({why})"
    stable = replace(status, phase=Phase.STABLE, message=message).with_condition(
        ANALYSIS, True, "Baked", message, obs.now
    )
    return Decision(
        status=stable,
        replicas=spec.replicas_min,
        register=True,
        route=route,
        events=(Event("Stable", message),),
    )


def _freeze(
    obs: Observation, spec: VersionSpec, status: Status, why: str, events: list[Event]
) -> Decision:
    message = (
        f"frozen at {status.weight}% ({why}); spec.rollout.onFailure is freeze: promote or "
        f"abort by hand (kubectl annotate mv {obs.name} {ACTION_ANNOTATION}=promote|abort)"
    )
    frozen = replace(status, phase=Phase.FROZEN, message=message)
    return Decision(
        status=frozen,
        replicas=spec.replicas_min,
        register=True,
        route=_current_route(spec, frozen),
        events=(*events, Event("Frozen", message, warning=True)),
    )


def _current_route(spec: VersionSpec, status: Status) -> Route:
    if status.promoted_at is not None:
        stable = status.stable_version
        return ((spec.version, 100), (stable, 0)) if stable else ((spec.version, 100),)
    return _canary_route(status.stable_version, spec.version, status.weight)


def _frozen(obs: Observation, spec: VersionSpec, status: Status, action: str) -> Decision:
    """Weights held; checks still reported; a person decides."""
    if action == "abort":
        return _roll_back(obs, spec, status, "Aborted", "aborted by hand while frozen")
    if action == "promote":
        if status.promoted_at is not None:
            return _bake_done(obs, spec, status, _current_route(spec, status), "promoted by hand")
        return _promote(obs, spec, status, "promoted by hand")
    status, events, _ = _analysed(obs, spec, status, counting=False)
    return Decision(
        status=status,
        replicas=spec.replicas_min,
        register=True,
        route=_current_route(spec, status),
        events=tuple(events),
    )


def _roll_back(
    obs: Observation, spec: VersionSpec, status: Status, reason: str, why: str
) -> Decision:
    """Weight 0, the alias fully on the stable version; replicas drain, then scale to zero."""
    stable = status.stable_version
    message = f"rolled back: {why}" + (
        f"; alias {spec.alias} is back on {stable}" if stable else ""
    )
    rolled = replace(
        status,
        phase=Phase.ROLLED_BACK,
        weight=0,
        finished_at=obs.now,
        message=message,
    ).with_condition(ANALYSIS, False, reason, message, obs.now)
    return Decision(
        status=rolled,
        replicas=spec.replicas_min,
        route=((stable, 100),) if stable else None,
        events=(Event("RolledBack", message, warning=True),),
    )


def _rolled_back(obs: Observation, spec: VersionSpec, status: Status, action: str) -> Decision:
    draining = status.finished_at is not None and obs.now < status.finished_at + timedelta(
        seconds=spec.rollout.drain_s
    )
    return Decision(
        status=status,
        replicas=spec.replicas_min if draining else 0,
        route=_without_me(obs, status),
        events=(_ignored(action, status),) if action else (),
    )


def _newer_serving(obs: Observation, status: Status) -> Peer | None:
    """A peer promoted after this version: the one that took its alias over."""
    mine = status.promoted_at
    newer = [
        p
        for p in obs.peers
        if p.phase in SERVING
        and p.promoted_at is not None
        and (mine is None or p.promoted_at > mine)
    ]
    return max(newer, key=lambda p: p.promoted_at or obs.now) if newer else None


def _stable(obs: Observation, spec: VersionSpec, status: Status, action: str) -> Decision:
    newer = _newer_serving(obs, status)
    if newer is not None:
        message = (
            f"superseded by {newer.version} (ModelVersion {newer.name}); kept scaled down for "
            f"a rollback: kubectl annotate mv {obs.name} {ACTION_ANNOTATION}=promote"
        )
        superseded = replace(status, phase=Phase.SUPERSEDED, weight=0, message=message)
        return Decision(
            status=superseded,
            replicas=spec.replicas_min,
            register=True,
            events=(Event("Superseded", message),),
        )
    weight = route_weight(obs.route, spec.version) if obs.route is not None else status.weight
    events = (_ignored(action, status),) if action else ()
    return Decision(
        status=replace(status, weight=weight),
        replicas=spec.replicas_min,
        register=True,
        events=events,
    )


def _superseded(obs: Observation, spec: VersionSpec, status: Status, action: str) -> Decision:
    newer = _newer_serving(obs, status)
    if action == "promote":
        message = "restoring by hand: placing, then serving all of the alias once ready"
        restoring = replace(
            status, phase=Phase.PENDING, restoring=True, message=message, placed_at=None
        )
        return Decision(status=restoring, register=True, events=(Event("Restoring", message),))
    events = (_ignored(action, status),) if action else ()
    weight = route_weight(obs.route, spec.version)
    if newer is None and weight > 0:
        message = f"serves alias {spec.alias} again (the version that replaced it rolled back)"
        serving = replace(status, phase=Phase.STABLE, weight=weight, message=message)
        return Decision(
            status=serving,
            replicas=spec.replicas_min,
            register=True,
            events=(*events, Event("ServingAgain", message)),
        )
    baking = newer is not None and newer.phase is Phase.PROMOTING
    return Decision(
        status=replace(status, weight=weight),
        replicas=spec.replicas_min if baking else 0,
        register=True,
        events=events,
    )


def _failed_phase(obs: Observation, spec: VersionSpec, status: Status, action: str) -> Decision:
    return Decision(
        status=status,
        replicas=0 if status.placement is not None else None,
        route=_without_me(obs, status),
        events=(_ignored(action, status),) if action else (),
    )


_HANDLERS = {
    Phase.PENDING: _pending,
    Phase.PLACING: _warming,
    Phase.WARMING: _warming,
    Phase.CANARY: _canary,
    Phase.FROZEN: _frozen,
    Phase.PROMOTING: _promoting,
    Phase.STABLE: _stable,
    Phase.SUPERSEDED: _superseded,
    Phase.ROLLED_BACK: _rolled_back,
    Phase.FAILED: _failed_phase,
}
