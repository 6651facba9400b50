"""The rollout state machine: from what was observed, the next status and what to make true.

`decide` is a pure function of an `Observation` (the resource, its peers for the same
alias, the pool's verdict, the Deployment, the alias's route, fresh measurements) and
returns a `Decision`: the new status, the Deployment's replicas, the route the alias must
have, and the Events to post. The reconciler gathers the observation and applies the
decision; every part of a decision is idempotent and derived from the status, so an
operator killed between writing the status and applying the rest redoes the same thing.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from gouache_operator.domain.canary import (
    canary_route,
    roll_back,
    run_canary,
    run_frozen,
    run_promoting,
)
from gouache_operator.domain.observation import (
    ACTION_ANNOTATION,
    ACTIONS,
    Decision,
    DeploymentState,
    Event,
    Observation,
    Peer,
    Route,
    analysis_due,
    needs_quality,
    needs_stable_quality,
    route_weight,
    stable_from_route,
    stats_since,
)
from gouache_operator.domain.spec import InvalidSpec, VersionSpec
from gouache_operator.domain.status import (
    ANALYSIS,
    PLACED,
    READY,
    ROLLING,
    SERVING,
    Phase,
    Placement,
    Status,
)

__all__ = [
    "ACTIONS",
    "ACTION_ANNOTATION",
    "Decision",
    "DeploymentState",
    "Event",
    "Observation",
    "Peer",
    "Route",
    "analysis_due",
    "decide",
    "needs_quality",
    "needs_stable_quality",
    "route_weight",
    "stable_from_route",
    "stats_since",
]

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
        return roll_back(obs, spec, status, "Aborted", "aborted by hand while warming up")
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
        route=canary_route(stable, spec.version, first.weight),
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
    Phase.CANARY: run_canary,
    Phase.FROZEN: run_frozen,
    Phase.PROMOTING: run_promoting,
    Phase.STABLE: _stable,
    Phase.SUPERSEDED: _superseded,
    Phase.ROLLED_BACK: _rolled_back,
    Phase.FAILED: _failed_phase,
}
