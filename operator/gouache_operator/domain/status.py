"""A ModelVersion's status as typed values, and its JSON form on the custom resource."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from gouache_operator.domain.analysis import Baseline, Check, MetricResult, Quality, Verdict


class Phase(StrEnum):
    """Where a version stands in its rollout (docs/rollout.md draws the transitions)."""

    PENDING = "Pending"
    PLACING = "Placing"
    WARMING = "Warming"
    CANARY = "Canary"
    FROZEN = "Frozen"
    PROMOTING = "Promoting"
    STABLE = "Stable"
    SUPERSEDED = "Superseded"
    ROLLED_BACK = "RolledBack"
    FAILED = "Failed"


ROLLING = frozenset({Phase.PENDING, Phase.PLACING, Phase.WARMING, Phase.CANARY, Phase.FROZEN})
"""Phases of a version on its way in: only one version per alias moves through them at once."""

SERVING = frozenset({Phase.PROMOTING, Phase.STABLE})
"""Phases of the version that takes (or just took) an alias's traffic."""

PLACED = "Placed"
READY = "Ready"
ANALYSIS = "Analysis"


@dataclass(frozen=True)
class Condition:
    """A Kubernetes condition; `since` moves only when `status` changes."""

    type: str
    status: str
    reason: str
    message: str
    since: datetime


@dataclass(frozen=True)
class Placement:
    """Where and how big the version was admitted."""

    pool: str
    replicas: int
    gpus_per_replica: int
    gpu_memory_gib: float


@dataclass(frozen=True)
class AnalysisRecord:
    """The last analysis, as written on the resource."""

    time: datetime
    check: Check


@dataclass(frozen=True)
class Status:
    """Everything the operator knows about a rollout; the resource's status is its only store.

    Restart-safe by construction: a new operator reads this and continues where the
    previous one stopped, so nothing here may live only in memory.
    """

    phase: Phase = Phase.PENDING
    message: str = ""
    weight: int = 0
    step: int = 0
    stable_version: str = ""
    endpoint: str = ""
    placed_at: datetime | None = None
    canary_started_at: datetime | None = None
    step_started_at: datetime | None = None
    promoted_at: datetime | None = None
    finished_at: datetime | None = None
    unavailable_since: datetime | None = None
    failed_checks: int = 0
    analysis: AnalysisRecord | None = None
    quality: Quality | None = None
    stable_quality: Quality | None = None
    baseline: Baseline | None = None
    placement: Placement | None = None
    restoring: bool = False
    conditions: tuple[Condition, ...] = ()
    observed_generation: int = 0

    def condition(self, kind: str) -> Condition | None:
        """The condition of this type, if set."""
        return next((c for c in self.conditions if c.type == kind), None)

    def with_condition(
        self, kind: str, ok: bool | None, reason: str, message: str, now: datetime
    ) -> Status:
        """This status with condition `kind` set (True, False, or Unknown for None)."""
        value = "Unknown" if ok is None else str(ok)
        old = self.condition(kind)
        since = old.since if old is not None and old.status == value else now
        new = Condition(type=kind, status=value, reason=reason, message=message, since=since)
        kept = [c for c in self.conditions if c.type != kind]
        order = {PLACED: 0, READY: 1, ANALYSIS: 2}
        merged = sorted([*kept, new], key=lambda c: (order.get(c.type, 9), c.type))
        return replace(self, conditions=tuple(merged))


Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time, aware and in UTC."""
    return datetime.now(UTC)


def _time(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 time as Kubernetes writes it, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _quality_json(quality: Quality | None) -> dict[str, Any] | None:
    if quality is None:
        return None
    if quality.error:
        return {"error": quality.error, "measurable": quality.measurable}
    return {
        "styleDistance": round(quality.style_distance, 4),
        "contentDistance": round(quality.content_distance, 4),
    }


def _quality(raw: object) -> Quality | None:
    if not isinstance(raw, Mapping):
        return None
    return Quality(
        style_distance=float(raw.get("styleDistance", 0.0)),
        content_distance=float(raw.get("contentDistance", 0.0)),
        error=str(raw.get("error", "")),
        measurable=bool(raw.get("measurable", True)),
    )


def _metric_json(metric: MetricResult) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": metric.name,
        "verdict": metric.verdict.value,
        "value": round(metric.value, 4),
        "gating": metric.gating,
        "message": metric.message,
    }
    if metric.threshold is not None:
        out["threshold"] = metric.threshold
    if metric.stable is not None:
        out["stable"] = round(metric.stable, 4)
    return out


def _metric(raw: Mapping[str, Any]) -> MetricResult:
    return MetricResult(
        name=str(raw.get("name", "")),
        verdict=Verdict(raw.get("verdict", Verdict.INCONCLUSIVE.value)),
        value=float(raw.get("value", 0.0)),
        threshold=float(raw["threshold"]) if "threshold" in raw else None,
        stable=float(raw["stable"]) if "stable" in raw else None,
        message=str(raw.get("message", "")),
        gating=bool(raw.get("gating", True)),
    )


def _analysis(raw: object) -> AnalysisRecord | None:
    if not isinstance(raw, Mapping):
        return None
    time = parse_time(raw.get("time"))
    if time is None:
        return None
    metrics = tuple(_metric(m) for m in raw.get("metrics", ()) if isinstance(m, Mapping))
    check = Check(
        verdict=Verdict(raw.get("verdict", Verdict.INCONCLUSIVE.value)),
        metrics=metrics,
        canary_samples=int(raw.get("canarySamples", 0)),
        stable_samples=int(raw.get("stableSamples", 0)),
    )
    return AnalysisRecord(time=time, check=check)


def _baseline(raw: object) -> Baseline | None:
    if not isinstance(raw, Mapping):
        return None
    return Baseline(
        latency_p95_ms=float(raw.get("latencyP95Ms", 0.0)),
        latency_samples=int(raw.get("latencySamples", 0)),
        rating_mean=float(raw.get("ratingMean", 0.0)),
        ratings=int(raw.get("ratings", 0)),
        quality=_quality(raw.get("quality")),
    )


def _placement(raw: object) -> Placement | None:
    if not isinstance(raw, Mapping) or not raw.get("pool"):
        return None
    return Placement(
        pool=str(raw["pool"]),
        replicas=int(raw.get("replicas", 0)),
        gpus_per_replica=int(raw.get("gpusPerReplica", 0)),
        gpu_memory_gib=float(raw.get("gpuMemoryGiB", 0.0)),
    )


def _conditions(raw: object) -> tuple[Condition, ...]:
    out = []
    for item in raw if isinstance(raw, Sequence) else ():
        if not isinstance(item, Mapping) or not item.get("type"):
            continue
        out.append(
            Condition(
                type=str(item["type"]),
                status=str(item.get("status", "Unknown")),
                reason=str(item.get("reason", "")),
                message=str(item.get("message", "")),
                since=parse_time(item.get("lastTransitionTime")) or datetime.fromtimestamp(0, UTC),
            )
        )
    return tuple(out)


def status_from_json(raw: Mapping[str, Any] | None) -> Status:
    """The typed status of a resource (an empty or foreign status reads as Pending)."""
    if not raw:
        return Status()
    try:
        phase = Phase(raw.get("phase") or Phase.PENDING.value)
    except ValueError:
        phase = Phase.PENDING
    return Status(
        phase=phase,
        message=str(raw.get("message", "")),
        weight=int(raw.get("weight", 0)),
        step=int(raw.get("step", 0)),
        stable_version=str(raw.get("stableVersion", "")),
        endpoint=str(raw.get("endpoint", "")),
        placed_at=parse_time(raw.get("placedAt")),
        canary_started_at=parse_time(raw.get("canaryStartedAt")),
        step_started_at=parse_time(raw.get("stepStartedAt")),
        promoted_at=parse_time(raw.get("promotedAt")),
        finished_at=parse_time(raw.get("finishedAt")),
        unavailable_since=parse_time(raw.get("unavailableSince")),
        failed_checks=int(raw.get("failedChecks", 0)),
        analysis=_analysis(raw.get("lastAnalysis")),
        quality=_quality(raw.get("quality")),
        stable_quality=_quality(raw.get("stableQuality")),
        baseline=_baseline(raw.get("baseline")),
        placement=_placement(raw.get("placement")),
        restoring=bool(raw.get("restoring", False)),
        conditions=_conditions(raw.get("conditions")),
        observed_generation=int(raw.get("observedGeneration", 0)),
    )


def status_to_json(status: Status) -> dict[str, Any]:
    """The status as the resource stores it; fields not set are written as null (removed)."""
    analysis = None
    if status.analysis is not None:
        check = status.analysis.check
        analysis = {
            "time": _time(status.analysis.time),
            "verdict": check.verdict.value,
            "canarySamples": check.canary_samples,
            "stableSamples": check.stable_samples,
            "summary": check.summary(),
            "metrics": [_metric_json(m) for m in check.metrics],
        }
    baseline = None
    if status.baseline is not None:
        baseline = {
            "latencyP95Ms": round(status.baseline.latency_p95_ms, 1),
            "latencySamples": status.baseline.latency_samples,
            "ratingMean": round(status.baseline.rating_mean, 3),
            "ratings": status.baseline.ratings,
            "quality": _quality_json(status.baseline.quality),
        }
    placement = None
    if status.placement is not None:
        placement = {
            "pool": status.placement.pool,
            "replicas": status.placement.replicas,
            "gpusPerReplica": status.placement.gpus_per_replica,
            "gpuMemoryGiB": status.placement.gpu_memory_gib,
        }
    return {
        "phase": status.phase.value,
        "message": status.message,
        "weight": status.weight,
        "step": status.step,
        "stableVersion": status.stable_version or None,
        "endpoint": status.endpoint or None,
        "placedAt": _time(status.placed_at),
        "canaryStartedAt": _time(status.canary_started_at),
        "stepStartedAt": _time(status.step_started_at),
        "promotedAt": _time(status.promoted_at),
        "finishedAt": _time(status.finished_at),
        "unavailableSince": _time(status.unavailable_since),
        "failedChecks": status.failed_checks,
        "lastAnalysis": analysis,
        "quality": _quality_json(status.quality),
        "stableQuality": _quality_json(status.stable_quality),
        "baseline": baseline,
        "placement": placement,
        "restoring": status.restoring or None,
        "conditions": [
            {
                "type": c.type,
                "status": c.status,
                "reason": c.reason,
                "message": c.message,
                "lastTransitionTime": _time(c.since),
                "observedGeneration": status.observed_generation,
            }
            for c in status.conditions
        ],
        "observedGeneration": status.observed_generation,
    }
