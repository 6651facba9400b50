"""Canary analysis: each metric of the canary against its gate, and one verdict per check."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from gouache_operator.domain.spec import AnalysisSpec


class Verdict(StrEnum):
    """A check's outcome. Too few samples is inconclusive, never a pass."""

    PASS = "Pass"
    FAIL = "Fail"
    INCONCLUSIVE = "Inconclusive"


@dataclass(frozen=True)
class VersionStats:
    """One version's jobs and ratings over the analysis window (from the feedback service)."""

    succeeded: int = 0
    failed: int = 0
    latency_p95_ms: float = 0.0
    ratings: int = 0
    rating_mean: float = 0.0

    @property
    def finished(self) -> int:
        """Jobs that reached a final state in the window."""
        return self.succeeded + self.failed

    @property
    def error_rate(self) -> float:
        """Failed share of finished jobs; 0 without any."""
        return self.failed / self.finished if self.finished else 0.0


@dataclass(frozen=True)
class Quality:
    """A version's measured quality on the golden set (`EvaluateModelVersion`), or why not.

    Distances: lower is closer to the style, and keeps more of the content. `error` says
    why there are none; `measurable` is False when the golden set cannot measure this kind
    of model at all (a family that paints only its trained styles), as opposed to a
    version that broke while being measured.
    """

    style_distance: float = 0.0
    content_distance: float = 0.0
    error: str = ""
    measurable: bool = True


@dataclass(frozen=True)
class Baseline:
    """What the canary is compared with: the stable version's figures.

    During a canary they come from the stable version's window; after promotion (the
    bake) from a snapshot taken when it was promoted, since N-1 then takes no traffic.
    """

    latency_p95_ms: float = 0.0
    latency_samples: int = 0
    rating_mean: float = 0.0
    ratings: int = 0
    quality: Quality | None = None

    @classmethod
    def of(cls, stats: VersionStats, quality: Quality | None) -> Baseline:
        """The stable version's window as a baseline."""
        return cls(
            latency_p95_ms=stats.latency_p95_ms,
            latency_samples=stats.succeeded,
            rating_mean=stats.rating_mean,
            ratings=stats.ratings,
            quality=quality,
        )


@dataclass(frozen=True)
class MetricResult:
    """One metric of one check: its value, the stable version's, the gate and the verdict."""

    name: str
    verdict: Verdict
    value: float
    threshold: float | None
    stable: float | None
    message: str
    gating: bool = True


@dataclass(frozen=True)
class Check:
    """One analysis: every metric, and the verdict over the gating ones."""

    verdict: Verdict
    metrics: tuple[MetricResult, ...]
    canary_samples: int
    stable_samples: int

    def failures(self) -> list[MetricResult]:
        """The gating metrics that failed."""
        return [m for m in self.metrics if m.gating and m.verdict is Verdict.FAIL]

    def summary(self) -> str:
        """One line for a status message or an Event: what failed, or what is missing."""
        failed = self.failures()
        if failed:
            return "; ".join(m.message for m in failed)
        pending = [m for m in self.metrics if m.gating and m.verdict is Verdict.INCONCLUSIVE]
        if pending:
            return "inconclusive: " + "; ".join(m.message for m in pending)
        return "all gates passed: " + "; ".join(m.message for m in self.metrics if m.gating)


def _error_rate(canary: VersionStats, spec: AnalysisSpec) -> MetricResult:
    limit = spec.thresholds.max_error_rate
    value = canary.error_rate
    if limit is None:
        return MetricResult(
            "error-rate", Verdict.PASS, value, None, None, f"error rate {value:.3f}", gating=False
        )
    # Failures beyond what min_samples jobs could carry under the limit settle the
    # check early: no number of later successes would bring the rate back under it.
    allowed = limit * spec.min_samples
    if canary.finished < spec.min_samples and canary.failed <= allowed:
        return MetricResult(
            "error-rate",
            Verdict.INCONCLUSIVE,
            value,
            limit,
            None,
            f"{canary.finished} canary jobs finished, {spec.min_samples} needed",
        )
    verdict = Verdict.PASS if value <= limit else Verdict.FAIL
    word = "<=" if verdict is Verdict.PASS else ">"
    return MetricResult(
        "error-rate",
        verdict,
        value,
        limit,
        None,
        f"error rate {value:.3f} {word} {limit:g} ({canary.failed} of {canary.finished} jobs failed)",
    )


def _latency(canary: VersionStats, baseline: Baseline, spec: AnalysisSpec) -> MetricResult:
    limit = spec.thresholds.max_latency_p95_ratio
    if canary.succeeded < spec.min_samples or baseline.latency_samples < spec.min_samples:
        return MetricResult(
            "latency-p95",
            Verdict.INCONCLUSIVE,
            canary.latency_p95_ms,
            limit,
            baseline.latency_p95_ms,
            f"p95 latency needs {spec.min_samples} succeeded jobs of each version "
            f"(canary {canary.succeeded}, stable {baseline.latency_samples})",
            gating=limit is not None,
        )
    if baseline.latency_p95_ms <= 0:
        return MetricResult(
            "latency-p95",
            Verdict.INCONCLUSIVE,
            canary.latency_p95_ms,
            limit,
            baseline.latency_p95_ms,
            "the stable version reports no latency",
            gating=limit is not None,
        )
    ratio = canary.latency_p95_ms / baseline.latency_p95_ms
    text = (
        f"p95 latency {canary.latency_p95_ms:.0f} ms = {ratio:.2f}x stable's "
        f"{baseline.latency_p95_ms:.0f} ms"
    )
    if limit is None:
        return MetricResult(
            "latency-p95", Verdict.PASS, ratio, None, baseline.latency_p95_ms, text, gating=False
        )
    verdict = Verdict.PASS if ratio <= limit else Verdict.FAIL
    word = "<=" if verdict is Verdict.PASS else ">"
    return MetricResult(
        "latency-p95", verdict, ratio, limit, baseline.latency_p95_ms, f"{text} {word} {limit:g}x"
    )


def _rating(canary: VersionStats, baseline: Baseline, spec: AnalysisSpec) -> MetricResult:
    limit = spec.thresholds.max_rating_drop
    gating = limit is not None
    if canary.ratings < spec.min_ratings or baseline.ratings < spec.min_ratings:
        return MetricResult(
            "rating",
            Verdict.INCONCLUSIVE,
            canary.rating_mean,
            limit,
            baseline.rating_mean,
            f"mean rating needs {spec.min_ratings} ratings of each version "
            f"(canary {canary.ratings}, stable {baseline.ratings})",
            gating=gating,
        )
    drop = baseline.rating_mean - canary.rating_mean
    text = (
        f"mean rating {canary.rating_mean:.2f} vs stable's {baseline.rating_mean:.2f} "
        f"(drop {drop:+.2f})"
    )
    if limit is None:
        return MetricResult(
            "rating", Verdict.PASS, canary.rating_mean, None, baseline.rating_mean, text, False
        )
    verdict = Verdict.PASS if drop <= limit else Verdict.FAIL
    word = "<=" if verdict is Verdict.PASS else ">"
    return MetricResult(
        "rating",
        verdict,
        canary.rating_mean,
        limit,
        baseline.rating_mean,
        f"{text} {word} {limit:g}",
    )


def _quality(canary: Quality | None, stable: Quality | None, spec: AnalysisSpec) -> MetricResult:
    limit = spec.thresholds.max_quality_regression
    gating = limit is not None
    if canary is None:
        return MetricResult(
            "quality", Verdict.INCONCLUSIVE, 0.0, limit, None, "quality not measured yet", gating
        )
    if canary.error and not canary.measurable:
        return MetricResult(
            "quality",
            Verdict.PASS,
            0.0,
            limit,
            None,
            f"not measured: the golden set cannot measure this version ({canary.error})",
            gating=False,
        )
    if canary.error:
        return MetricResult(
            "quality",
            Verdict.FAIL if gating else Verdict.PASS,
            0.0,
            limit,
            None,
            f"quality evaluation of the canary failed: {canary.error}",
            gating,
        )
    if stable is None:
        return MetricResult(
            "quality",
            Verdict.INCONCLUSIVE,
            0.0,
            limit,
            None,
            "the stable version's quality is not measured yet",
            gating,
        )
    if stable.error or stable.style_distance <= 0 or stable.content_distance <= 0:
        # Nothing to compare with: report the canary's figures, but do not let a stable
        # version that cannot be measured block every rollout after it.
        return MetricResult(
            "quality",
            Verdict.PASS,
            canary.style_distance,
            limit,
            None,
            f"style distance {canary.style_distance:.3f}, content distance "
            f"{canary.content_distance:.3f}; not compared: the stable version's quality is "
            f"unknown ({stable.error or 'no measurement'})",
            gating=False,
        )
    style = canary.style_distance / stable.style_distance - 1.0
    content = canary.content_distance / stable.content_distance - 1.0
    worst = max(style, content)
    text = (
        f"style distance {canary.style_distance:.3f} ({style:+.1%} vs stable), content "
        f"distance {canary.content_distance:.3f} ({content:+.1%})"
    )
    if limit is None:
        return MetricResult("quality", Verdict.PASS, worst, None, 0.0, text, gating=False)
    verdict = Verdict.PASS if worst <= limit else Verdict.FAIL
    word = "<=" if verdict is Verdict.PASS else ">"
    return MetricResult(
        "quality", verdict, worst, limit, 0.0, f"{text}; regression {word} {limit:.0%}"
    )


def combine(metrics: Sequence[MetricResult]) -> Verdict:
    """Fail if a gating metric failed, pass if every gating one passed, else inconclusive."""
    gating = [m for m in metrics if m.gating]
    if any(m.verdict is Verdict.FAIL for m in gating):
        return Verdict.FAIL
    if all(m.verdict is Verdict.PASS for m in gating):
        return Verdict.PASS
    return Verdict.INCONCLUSIVE


def analyse(
    canary: VersionStats,
    baseline: Baseline,
    spec: AnalysisSpec,
    *,
    quality: Quality | None,
    available: bool = True,
) -> Check:
    """One check of the canary against the baseline under the spec's gates.

    An unavailable canary (replicas lost) makes the check inconclusive: its numbers
    would describe the few jobs it still served, not the version.
    """
    metrics = [
        _error_rate(canary, spec),
        _latency(canary, baseline, spec),
        _rating(canary, baseline, spec),
        _quality(quality, baseline.quality, spec),
    ]
    if not available:
        metrics.append(
            MetricResult(
                "availability",
                Verdict.INCONCLUSIVE,
                0.0,
                None,
                None,
                "the canary has fewer available replicas than it needs",
            )
        )
    return Check(
        verdict=combine(metrics),
        metrics=tuple(metrics),
        canary_samples=canary.finished,
        stable_samples=baseline.latency_samples,
    )
