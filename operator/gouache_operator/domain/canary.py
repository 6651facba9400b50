"""The canary stages: checks, steps, promotion and the bake, freezing, rolling back."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from gouache_operator.domain.analysis import Baseline, Check, Verdict, VersionStats, analyse
from gouache_operator.domain.observation import (
    ACTION_ANNOTATION,
    Decision,
    Event,
    Observation,
    Route,
)
from gouache_operator.domain.spec import VersionSpec
from gouache_operator.domain.status import ANALYSIS, READY, AnalysisRecord, Phase, Status


def canary_route(stable: str, version: str, weight: int) -> Route:
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


def run_canary(obs: Observation, spec: VersionSpec, status: Status, action: str) -> Decision:
    steps = spec.rollout.steps
    step = min(status.step, len(steps) - 1)
    weight = steps[step].weight
    status = replace(status, step=step, weight=weight)
    if action == "abort":
        return roll_back(obs, spec, status, "Aborted", "aborted by hand during the canary")
    if action == "promote":
        return promote(obs, spec, status, "promoted by hand")
    if status.stable_quality is None and obs.stable_quality is not None:
        status = replace(status, stable_quality=obs.stable_quality)
    base = Decision(
        status=status,
        replicas=spec.replicas_min,
        register=True,
        route=canary_route(status.stable_version, spec.version, weight),
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
            return roll_back(
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
        decision = roll_back(obs, spec, status, "AnalysisFailed", why)
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
                route=canary_route(status.stable_version, spec.version, nxt.weight),
                events=tuple(events),
            )
        decision = promote(obs, spec, status, f"all {len(steps)} steps passed")
        return replace(decision, events=(*events, *decision.events))
    message = f"canary step {step + 1}/{len(steps)}: {weight}% of alias {spec.alias}"
    if spec.paused:
        message += "; paused (spec.paused): checks run, steps wait"
    elif last is not None:
        message += f"; last check {last.check.verdict.value.lower()}"
    return replace(base, status=replace(status, message=message), events=tuple(events))


def promote(obs: Observation, spec: VersionSpec, status: Status, why: str) -> Decision:
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


def run_promoting(obs: Observation, spec: VersionSpec, status: Status, action: str) -> Decision:
    """The bake: 100% on this version, N-1 warm; the same gates against N-1's baseline."""
    stable = status.stable_version
    route: Route = ((spec.version, 100), (stable, 0)) if stable else ((spec.version, 100),)
    if action == "abort":
        return roll_back(obs, spec, status, "Aborted", "aborted by hand during the bake")
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
        decision = roll_back(obs, spec, status, "BakeFailed", why)
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
    return canary_route(status.stable_version, spec.version, status.weight)


def run_frozen(obs: Observation, spec: VersionSpec, status: Status, action: str) -> Decision:
    """Weights held; checks still reported; a person decides."""
    if action == "abort":
        return roll_back(obs, spec, status, "Aborted", "aborted by hand while frozen")
    if action == "promote":
        if status.promoted_at is not None:
            return _bake_done(obs, spec, status, _current_route(spec, status), "promoted by hand")
        return promote(obs, spec, status, "promoted by hand")
    status, events, _ = _analysed(obs, spec, status, counting=False)
    return Decision(
        status=status,
        replicas=spec.replicas_min,
        register=True,
        route=_current_route(spec, status),
        events=tuple(events),
    )


def roll_back(
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
