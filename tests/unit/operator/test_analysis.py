"""Canary analysis verdicts, table-driven: each gate, too few samples, early failure."""

from __future__ import annotations

import pytest

from gouache_operator.domain.analysis import (
    Baseline,
    Quality,
    Verdict,
    VersionStats,
    analyse,
)
from gouache_operator.domain.spec import AnalysisSpec, Thresholds

SPEC = AnalysisSpec(
    min_samples=10,
    min_ratings=5,
    thresholds=Thresholds(
        max_error_rate=0.1,
        max_latency_p95_ratio=1.5,
        max_rating_drop=0.5,
        max_quality_regression=0.1,
    ),
)
STABLE = Baseline(
    latency_p95_ms=400,
    latency_samples=50,
    rating_mean=4.0,
    ratings=20,
    quality=Quality(style_distance=0.60, content_distance=0.50),
)
GOOD_QUALITY = Quality(style_distance=0.58, content_distance=0.52)
HEALTHY = VersionStats(succeeded=20, failed=1, latency_p95_ms=450, ratings=6, rating_mean=3.9)


def metric(check_metrics: tuple[object, ...], name: str) -> Verdict:
    return next(m.verdict for m in check_metrics if m.name == name)  # type: ignore[attr-defined]


def test_a_healthy_canary_passes() -> None:
    check = analyse(HEALTHY, STABLE, SPEC, quality=GOOD_QUALITY)
    assert check.verdict is Verdict.PASS
    assert "all gates passed" in check.summary()


@pytest.mark.parametrize(
    ("canary", "quality", "failing", "words"),
    [
        (
            VersionStats(succeeded=15, failed=5, latency_p95_ms=400, ratings=6, rating_mean=4),
            GOOD_QUALITY,
            "error-rate",
            "error rate 0.250 > 0.1 (5 of 20 jobs failed)",
        ),
        (
            VersionStats(succeeded=20, latency_p95_ms=900, ratings=6, rating_mean=4),
            GOOD_QUALITY,
            "latency-p95",
            "2.25x stable's 400 ms > 1.5x",
        ),
        (
            VersionStats(succeeded=20, latency_p95_ms=400, ratings=6, rating_mean=3.2),
            GOOD_QUALITY,
            "rating",
            "drop +0.80) > 0.5",
        ),
        (
            HEALTHY,
            Quality(style_distance=0.80, content_distance=0.50),
            "quality",
            "regression > 10%",
        ),
        (
            HEALTHY,
            Quality(error="INTERNAL: injected"),
            "quality",
            "evaluation of the canary failed",
        ),
    ],
)
def test_each_gate_fails_with_its_value_and_threshold(
    canary: VersionStats, quality: Quality, failing: str, words: str
) -> None:
    check = analyse(canary, STABLE, SPEC, quality=quality)
    assert check.verdict is Verdict.FAIL
    assert [m.name for m in check.failures()] == [failing]
    assert words in check.summary()


def test_too_few_samples_is_inconclusive_not_a_pass() -> None:
    check = analyse(
        VersionStats(succeeded=3, latency_p95_ms=100, ratings=1, rating_mean=5),
        STABLE,
        SPEC,
        quality=GOOD_QUALITY,
    )
    assert check.verdict is Verdict.INCONCLUSIVE
    assert "3 canary jobs finished, 10 needed" in check.summary()


def test_failures_beyond_what_the_minimum_allows_fail_early() -> None:
    # 10 samples at most 10% failed allows one failure; two settle it before 10 finish.
    check = analyse(VersionStats(succeeded=1, failed=2), STABLE, SPEC, quality=GOOD_QUALITY)
    assert metric(check.metrics, "error-rate") is Verdict.FAIL
    assert check.verdict is Verdict.FAIL
    one = analyse(VersionStats(succeeded=1, failed=1), STABLE, SPEC, quality=GOOD_QUALITY)
    assert metric(one.metrics, "error-rate") is Verdict.INCONCLUSIVE


def test_stable_without_enough_samples_leaves_latency_inconclusive() -> None:
    thin = Baseline(latency_p95_ms=400, latency_samples=2, rating_mean=4, ratings=20)
    check = analyse(HEALTHY, thin, SPEC, quality=GOOD_QUALITY)
    assert metric(check.metrics, "latency-p95") is Verdict.INCONCLUSIVE
    assert check.verdict is Verdict.INCONCLUSIVE


def test_a_disabled_gate_is_reported_but_does_not_decide() -> None:
    spec = AnalysisSpec(
        min_samples=10,
        min_ratings=5,
        thresholds=Thresholds(max_rating_drop=None, max_quality_regression=None),
    )
    check = analyse(
        VersionStats(succeeded=20, latency_p95_ms=400, ratings=0),
        STABLE,
        spec,
        quality=Quality(style_distance=9, content_distance=9),
    )
    assert check.verdict is Verdict.PASS
    assert {m.name: m.gating for m in check.metrics} == {
        "error-rate": True,
        "latency-p95": True,
        "rating": False,
        "quality": False,
    }


def test_an_unmeasurable_stable_does_not_block() -> None:
    stable = Baseline(
        latency_p95_ms=400,
        latency_samples=50,
        rating_mean=4,
        ratings=20,
        quality=Quality(error="x"),
    )
    check = analyse(HEALTHY, stable, SPEC, quality=GOOD_QUALITY)
    assert check.verdict is Verdict.PASS
    assert metric(check.metrics, "quality") is Verdict.PASS


def test_an_unavailable_canary_is_inconclusive() -> None:
    check = analyse(HEALTHY, STABLE, SPEC, quality=GOOD_QUALITY, available=False)
    assert check.verdict is Verdict.INCONCLUSIVE
    assert "fewer available replicas" in check.summary()


def test_a_version_the_golden_set_cannot_measure_is_not_failed_for_it() -> None:
    # A feedforward version paints only its trained styles: inference answers
    # FAILED_PRECONDITION, which says nothing about the version's health.
    unmeasurable = Quality(
        error="FAILED_PRECONDITION: paints only its 8 trained styles", measurable=False
    )
    check = analyse(HEALTHY, STABLE, SPEC, quality=unmeasurable)
    assert check.verdict is Verdict.PASS
    quality = next(m for m in check.metrics if m.name == "quality")
    assert not quality.gating
    assert "not measured" in quality.message
    broken = analyse(HEALTHY, STABLE, SPEC, quality=Quality(error="INTERNAL: boom"))
    assert broken.verdict is Verdict.FAIL
