"""ModelVersion and GPUPool specs as typed values, with the checks a CRD schema cannot make."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?")
MAX_STEPS = 20

OnFailure = Literal["rollback", "freeze"]


class InvalidSpec(ValueError):
    """A resource the API server accepted but the operator cannot act on.

    `reason` is the condition reason written on the resource (CamelCase, e.g.
    "UnknownFamily"); the message says what to change.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def parse_duration(text: object, *, where: str) -> float:
    """Seconds in a duration such as "90s", "5m", "2h" or "1h30m"; "0s" is zero."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        seconds = float(text)
    elif isinstance(text, str):
        match = _DURATION.fullmatch(text.strip())
        if not text.strip() or match is None or not any(match.groups()):
            raise InvalidSpec(
                "InvalidDuration",
                f"{where} must be a duration such as 30s, 5m, 2h or 1h30m, got {text!r}",
            )
        hours, minutes, secs = (int(part or 0) for part in match.groups())
        seconds = float(hours * 3600 + minutes * 60 + secs)
    else:
        raise InvalidSpec("InvalidDuration", f"{where} must be a duration string, got {text!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise InvalidSpec("InvalidDuration", f"{where} must not be negative, got {text!r}")
    return seconds


@dataclass(frozen=True)
class Step:
    """One canary step: send `weight` percent of the alias's jobs to the canary, then hold.

    The step ends when `pause_s` has passed and an analysis during the step passed.
    """

    weight: int
    pause_s: float = 0.0


@dataclass(frozen=True)
class Thresholds:
    """The gates a canary must pass, each compared at every analysis.

    `max_error_rate` is absolute (failed / finished jobs); latency, rating and quality
    are relative to the stable version. None disables a gate (it is then reported only).
    """

    max_error_rate: float | None = 0.05
    max_latency_p95_ratio: float | None = 1.5
    max_rating_drop: float | None = None
    max_quality_regression: float | None = 0.10


@dataclass(frozen=True)
class AnalysisSpec:
    """How often and over what window the canary is compared, and how many failures end it."""

    interval_s: float = 60.0
    window_s: float = 600.0
    min_samples: int = 20
    min_ratings: int = 10
    failure_limit: int = 3
    thresholds: Thresholds = field(default_factory=Thresholds)


@dataclass(frozen=True)
class RolloutSpec:
    """The canary plan: steps, analysis, what a failure does, and the timings around them."""

    steps: tuple[Step, ...] = (Step(weight=10, pause_s=7200.0),)
    analysis: AnalysisSpec = field(default_factory=AnalysisSpec)
    on_failure: OnFailure = "rollback"
    bake_s: float = 600.0
    progress_deadline_s: float = 600.0
    drain_s: float = 120.0


@dataclass(frozen=True)
class Weights:
    """Where a version's artifact lies and the sha256 of its manifest.json."""

    uri: str
    sha256: str


@dataclass(frozen=True)
class VersionSpec:
    """A ModelVersion's spec, checked. `model` is the catalogue build it serves."""

    version: str
    model: str
    family: str
    alias: str
    pool: str
    gpu_memory_gib: float
    weights: Weights | None = None
    runtime: str = "onnx"
    precision: str = "auto"
    replicas_min: int = 1
    replicas_max: int = 1
    cpu: str = "2"
    memory: str = "8Gi"
    image: str = ""
    paused: bool = False
    rollout: RolloutSpec = field(default_factory=RolloutSpec)

    def served_as(self) -> str:
        """The inference `models` entry that serves this version: "version=model"."""
        return self.version if self.version == self.model else f"{self.version}={self.model}"


@dataclass(frozen=True)
class Toleration:
    """A Kubernetes toleration, kept as the API writes it."""

    key: str = ""
    operator: str = "Equal"
    value: str = ""
    effect: str = ""
    toleration_seconds: int | None = None

    def manifest(self) -> dict[str, Any]:
        """The toleration in Kubernetes JSON form (empty fields left out)."""
        out: dict[str, Any] = {"operator": self.operator}
        for name, value in (("key", self.key), ("value", self.value), ("effect", self.effect)):
            if value:
                out[name] = value
        if self.toleration_seconds is not None:
            out["tolerationSeconds"] = self.toleration_seconds
        return out


@dataclass(frozen=True)
class PoolSpec:
    """A GPUPool: which nodes belong to it and what GPUs they carry."""

    name: str
    node_selector: Mapping[str, str]
    gpu_type: str
    gpus_per_node: int
    gpu_memory_gib: float
    tolerations: tuple[Toleration, ...] = ()
    gpu_resource: str = "nvidia.com/gpu"
    min_nodes: int = 0
    max_nodes: int = 0


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidSpec("InvalidSpec", f"{where} must be an object")
    return value


def _number(value: object, where: str, *, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidSpec("InvalidSpec", f"{where} must be a number, got {value!r}")
    if not low <= value <= high:
        raise InvalidSpec(
            "InvalidSpec", f"{where} must be between {low:g} and {high:g}, got {value}"
        )
    return float(value)


def _integer(value: object, where: str, *, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidSpec("InvalidSpec", f"{where} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise InvalidSpec("InvalidSpec", f"{where} must be between {low} and {high}, got {value}")
    return value


def _name(value: object, where: str) -> str:
    if not isinstance(value, str) or not NAME.fullmatch(value):
        raise InvalidSpec(
            "InvalidSpec",
            f"{where} must be 1-64 lowercase letters, digits, '.', '_' or '-', got {value!r}",
        )
    return value


def _optional_number(
    raw: Mapping[str, Any], key: str, default: float | None, where: str, high: float
) -> float | None:
    if key not in raw:
        return default
    if raw[key] is None:
        return None
    return _number(raw[key], f"{where}.{key}", low=0.0, high=high)


def parse_steps(raw: object) -> tuple[Step, ...]:
    """Canary steps: 1-20 steps with weights rising strictly from 1 to 100."""
    if raw is None:
        return RolloutSpec().steps
    if not isinstance(raw, Sequence) or isinstance(raw, str) or not raw:
        raise InvalidSpec("InvalidSteps", "spec.rollout.steps must list at least one step")
    if len(raw) > MAX_STEPS:
        raise InvalidSpec(
            "InvalidSteps", f"spec.rollout.steps has {len(raw)} steps; at most {MAX_STEPS}"
        )
    steps: list[Step] = []
    for index, item in enumerate(raw):
        where = f"spec.rollout.steps[{index}]"
        body = _mapping(item, where)
        weight = _integer(body.get("weight"), f"{where}.weight", low=1, high=100)
        if steps and weight <= steps[-1].weight:
            raise InvalidSpec(
                "InvalidSteps",
                f"{where}.weight is {weight}, not above the previous step's "
                f"{steps[-1].weight}; step weights must rise",
            )
        pause = parse_duration(body["pause"], where=f"{where}.pause") if "pause" in body else 0.0
        steps.append(Step(weight=weight, pause_s=pause))
    return tuple(steps)


def parse_thresholds(raw: object) -> Thresholds:
    """The analysis gates; an explicit null disables one."""
    body = _mapping(raw, "spec.rollout.analysis.thresholds")
    where = "spec.rollout.analysis.thresholds"
    defaults = Thresholds()
    latency = _optional_number(
        body, "maxLatencyP95Ratio", defaults.max_latency_p95_ratio, where, 100.0
    )
    if latency is not None and latency < 1.0:
        raise InvalidSpec(
            "InvalidSpec",
            f"{where}.maxLatencyP95Ratio must be at least 1 (1.5 allows 50% slower), got {latency}",
        )
    return Thresholds(
        max_error_rate=_optional_number(body, "maxErrorRate", defaults.max_error_rate, where, 1.0),
        max_latency_p95_ratio=latency,
        max_rating_drop=_optional_number(
            body, "maxRatingDrop", defaults.max_rating_drop, where, 4.0
        ),
        max_quality_regression=_optional_number(
            body, "maxQualityRegression", defaults.max_quality_regression, where, 10.0
        ),
    )


def parse_analysis(raw: object) -> AnalysisSpec:
    """Analysis interval, window, sample minimums and the failure limit."""
    body = _mapping(raw, "spec.rollout.analysis")
    where = "spec.rollout.analysis"
    defaults = AnalysisSpec()
    interval = parse_duration(body.get("interval", "1m"), where=f"{where}.interval")
    window = parse_duration(body.get("window", "10m"), where=f"{where}.window")
    if interval <= 0:
        raise InvalidSpec("InvalidSpec", f"{where}.interval must be positive")
    if window < interval:
        raise InvalidSpec(
            "InvalidSpec",
            f"{where}.window ({window:g}s) must be at least the interval ({interval:g}s)",
        )
    return AnalysisSpec(
        interval_s=interval,
        window_s=window,
        min_samples=_integer(
            body.get("minSamples", defaults.min_samples), f"{where}.minSamples", low=1, high=100_000
        ),
        min_ratings=_integer(
            body.get("minRatings", defaults.min_ratings), f"{where}.minRatings", low=1, high=100_000
        ),
        failure_limit=_integer(
            body.get("failureLimit", defaults.failure_limit),
            f"{where}.failureLimit",
            low=1,
            high=100,
        ),
        thresholds=parse_thresholds(body.get("thresholds")),
    )


def parse_rollout(raw: object) -> RolloutSpec:
    """The whole canary plan, with the defaults of requirements §17.3 (10% for 2 h)."""
    body = _mapping(raw, "spec.rollout")
    on_failure = body.get("onFailure", "rollback")
    if on_failure not in ("rollback", "freeze"):
        raise InvalidSpec(
            "InvalidSpec", f"spec.rollout.onFailure must be rollback or freeze, got {on_failure!r}"
        )
    return RolloutSpec(
        steps=parse_steps(body.get("steps")),
        analysis=parse_analysis(body.get("analysis")),
        on_failure="freeze" if on_failure == "freeze" else "rollback",
        bake_s=parse_duration(body.get("bake", "10m"), where="spec.rollout.bake"),
        progress_deadline_s=parse_duration(
            body.get("progressDeadline", "10m"), where="spec.rollout.progressDeadline"
        ),
        drain_s=parse_duration(body.get("drain", "2m"), where="spec.rollout.drain"),
    )


def parse_version_spec(raw: Mapping[str, Any]) -> VersionSpec:
    """A ModelVersion spec as the API server stored it, checked beyond its schema."""
    version = _name(raw.get("version"), "spec.version")
    model = _name(raw.get("model") or version, "spec.model")
    family = raw.get("family")
    if not isinstance(family, str) or not family:
        raise InvalidSpec("InvalidSpec", "spec.family is required, e.g. adain")
    weights_raw = raw.get("weights")
    weights = None
    if weights_raw is not None:
        body = _mapping(weights_raw, "spec.weights")
        uri, sha = body.get("uri"), body.get("sha256")
        if not isinstance(uri, str) or not uri or not isinstance(sha, str):
            raise InvalidSpec("InvalidSpec", "spec.weights needs uri and sha256")
        weights = Weights(uri=uri, sha256=sha.lower())
    resources = _mapping(raw.get("resources"), "spec.resources")
    replicas = _mapping(raw.get("replicas"), "spec.replicas")
    low = _integer(replicas.get("min", 1), "spec.replicas.min", low=1, high=64)
    high = _integer(replicas.get("max", low), "spec.replicas.max", low=1, high=64)
    if high < low:
        raise InvalidSpec("InvalidSpec", f"spec.replicas.max ({high}) is below min ({low})")
    runtime = raw.get("runtime", "onnx")
    if runtime not in ("onnx", "torch"):
        raise InvalidSpec("InvalidSpec", f"spec.runtime must be onnx or torch, got {runtime!r}")
    precision = raw.get("precision", "auto")
    if precision not in ("auto", "fp16", "fp32"):
        raise InvalidSpec(
            "InvalidSpec", f"spec.precision must be auto, fp16 or fp32, got {precision!r}"
        )
    return VersionSpec(
        version=version,
        model=model,
        family=family,
        alias=_name(raw.get("alias"), "spec.alias"),
        pool=str(raw.get("pool") or ""),
        gpu_memory_gib=_number(
            resources.get("gpuMemoryGiB"), "spec.resources.gpuMemoryGiB", low=0.1, high=4096.0
        ),
        weights=weights,
        runtime=str(runtime),
        precision=str(precision),
        replicas_min=low,
        replicas_max=high,
        cpu=str(resources.get("cpu", "2")),
        memory=str(resources.get("memory", "8Gi")),
        image=str(raw.get("image") or ""),
        paused=bool(raw.get("paused", False)),
        rollout=parse_rollout(raw.get("rollout")),
    )


def parse_pool_spec(name: str, raw: Mapping[str, Any]) -> PoolSpec:
    """A GPUPool spec as stored, checked."""
    selector = _mapping(raw.get("nodeSelector"), "spec.nodeSelector")
    if not selector:
        raise InvalidSpec(
            "InvalidSpec", "spec.nodeSelector needs at least one label, or every node would match"
        )
    tolerations = []
    for index, item in enumerate(raw.get("tolerations") or ()):
        body = _mapping(item, f"spec.tolerations[{index}]")
        seconds = body.get("tolerationSeconds")
        tolerations.append(
            Toleration(
                key=str(body.get("key", "")),
                operator=str(body.get("operator", "Equal")),
                value=str(body.get("value", "")),
                effect=str(body.get("effect", "")),
                toleration_seconds=int(seconds) if isinstance(seconds, int) else None,
            )
        )
    nodes = _mapping(raw.get("nodes"), "spec.nodes")
    return PoolSpec(
        name=name,
        node_selector={str(k): str(v) for k, v in selector.items()},
        gpu_type=str(raw.get("gpuType", "")),
        gpus_per_node=_integer(raw.get("gpusPerNode"), "spec.gpusPerNode", low=1, high=64),
        gpu_memory_gib=_number(raw.get("gpuMemoryGiB"), "spec.gpuMemoryGiB", low=1.0, high=4096.0),
        tolerations=tuple(tolerations),
        gpu_resource=str(raw.get("gpuResource", "nvidia.com/gpu")),
        min_nodes=int(nodes.get("min", 0)),
        max_nodes=int(nodes.get("max", 0)),
    )


def digest(value: object) -> str:
    """A short stable digest of JSON-able data (to notice spec changes)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
