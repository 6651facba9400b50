"""ModelVersion and GPUPool specs: what the schema cannot refuse, refused with a reason."""

from __future__ import annotations

from typing import Any

import pytest

from gouache_operator.domain.spec import (
    InvalidSpec,
    Step,
    parse_duration,
    parse_pool_spec,
    parse_version_spec,
)


def spec(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "version": "adain.lite0-v1-r2",
        "model": "adain.lite0-v1",
        "family": "adain",
        "alias": "adain",
        "pool": "h100",
        "resources": {"gpuMemoryGiB": 6},
    }
    body.update(overrides)
    return body


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0s", 0),
        ("90s", 90),
        ("5m", 300),
        ("2h", 7200),
        ("1h30m", 5400),
        ("1h2m3s", 3723),
        (15, 15),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text, where="x") == seconds


@pytest.mark.parametrize("text", ["", "5", "m", "1d", "-5s", "5ms", "1.5h", None, True])
def test_bad_durations_name_the_field(text: object) -> None:
    with pytest.raises(InvalidSpec, match=r"spec\.rollout\.bake") as refused:
        parse_duration(text, where="spec.rollout.bake")
    assert refused.value.reason == "InvalidDuration"


def test_defaults_follow_the_requirements() -> None:
    parsed = parse_version_spec(spec())
    assert parsed.rollout.steps == (Step(weight=10, pause_s=7200.0),)
    assert parsed.rollout.on_failure == "rollback"
    assert parsed.rollout.analysis.thresholds.max_error_rate == 0.05
    assert parsed.replicas_min == parsed.replicas_max == 1
    assert parsed.served_as() == "adain.lite0-v1-r2=adain.lite0-v1"


def test_model_defaults_to_the_version() -> None:
    parsed = parse_version_spec(spec(model=None, version="adain.lite0-v1"))
    assert parsed.model == "adain.lite0-v1"
    assert parsed.served_as() == "adain.lite0-v1"


def test_steps_and_analysis() -> None:
    parsed = parse_version_spec(
        spec(
            rollout={
                "steps": [{"weight": 10, "pause": "1m"}, {"weight": 50}],
                "analysis": {
                    "interval": "10s",
                    "window": "1m",
                    "minSamples": 3,
                    "thresholds": {"maxRatingDrop": 0.5, "maxQualityRegression": None},
                },
                "onFailure": "freeze",
                "bake": "0s",
            }
        )
    )
    assert parsed.rollout.steps == (Step(10, 60.0), Step(50, 0.0))
    assert parsed.rollout.analysis.interval_s == 10
    assert parsed.rollout.analysis.min_samples == 3
    assert parsed.rollout.analysis.thresholds.max_rating_drop == 0.5
    assert parsed.rollout.analysis.thresholds.max_quality_regression is None
    assert parsed.rollout.on_failure == "freeze"
    assert parsed.rollout.bake_s == 0


@pytest.mark.parametrize(
    ("rollout", "reason", "words"),
    [
        ({"steps": [{"weight": 50}, {"weight": 20}]}, "InvalidSteps", "must rise"),
        ({"steps": [{"weight": 50}, {"weight": 50}]}, "InvalidSteps", "must rise"),
        ({"steps": []}, "InvalidSteps", "at least one step"),
        ({"steps": [{"weight": 10 + i} for i in range(21)]}, "InvalidSteps", "at most 20"),
        ({"analysis": {"interval": "5m", "window": "1m"}}, "InvalidSpec", "at least the interval"),
        ({"analysis": {"interval": "0s"}}, "InvalidSpec", "interval must be positive"),
        ({"analysis": {"thresholds": {"maxLatencyP95Ratio": 0.5}}}, "InvalidSpec", "at least 1"),
        ({"onFailure": "pray"}, "InvalidSpec", "rollback or freeze"),
    ],
)
def test_rollouts_the_schema_lets_through_are_refused(
    rollout: dict[str, Any], reason: str, words: str
) -> None:
    with pytest.raises(InvalidSpec, match=words) as refused:
        parse_version_spec(spec(rollout=rollout))
    assert refused.value.reason == reason


def test_replicas_bounds() -> None:
    with pytest.raises(InvalidSpec, match="below min"):
        parse_version_spec(spec(replicas={"min": 3, "max": 2}))


def test_pool_spec() -> None:
    pool = parse_pool_spec(
        "h100",
        {
            "nodeSelector": {"gouache.dev/pool": "h100"},
            "tolerations": [
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
            ],
            "gpuType": "nvidia-h100-80gb",
            "gpusPerNode": 8,
            "gpuMemoryGiB": 80,
        },
    )
    assert pool.gpus_per_node == 8
    assert pool.tolerations[0].manifest() == {
        "operator": "Exists",
        "key": "nvidia.com/gpu",
        "effect": "NoSchedule",
    }
    with pytest.raises(InvalidSpec, match="nodeSelector"):
        parse_pool_spec("x", {"nodeSelector": {}, "gpusPerNode": 1, "gpuMemoryGiB": 80})


def test_precision_defaults_to_auto_and_is_checked() -> None:
    assert parse_version_spec(spec()).precision == "auto"
    assert parse_version_spec(spec(precision="fp32")).precision == "fp32"
    with pytest.raises(
        InvalidSpec, match=r"spec\.precision must be auto, fp16 or fp32, got 'int8'"
    ):
        parse_version_spec(spec(precision="int8"))
