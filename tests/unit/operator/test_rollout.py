"""The rollout state machine, table by table and as whole scripted rollouts."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gouache_operator.domain.analysis import Quality, VersionStats
from gouache_operator.domain.placement import Admission
from gouache_operator.domain.rollout import (
    Decision,
    DeploymentState,
    Observation,
    Peer,
    Route,
    analysis_due,
    decide,
    stats_since,
)
from gouache_operator.domain.spec import (
    AnalysisSpec,
    InvalidSpec,
    RolloutSpec,
    Step,
    Thresholds,
    VersionSpec,
)
from gouache_operator.domain.status import Phase, Status

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
STABLE = "adain.lite0-v1"
CANARY = "adain.lite0-v2"
FITS = Admission(fits=True, reason="Placed", message="1 x 1 GPU", gpus_per_replica=1)
GOOD = VersionStats(succeeded=30, failed=0, latency_p95_ms=300, ratings=0)
BAD = VersionStats(succeeded=10, failed=10, latency_p95_ms=300)
STABLE_STATS = VersionStats(succeeded=200, latency_p95_ms=300)
QUALITY = Quality(style_distance=0.6, content_distance=0.5)
READY = DeploymentState(replicas=1, available=1)


def version_spec(**rollout: Any) -> VersionSpec:
    plan = {
        "steps": (Step(20, 10.0), Step(50, 10.0)),
        "analysis": AnalysisSpec(
            interval_s=5.0,
            window_s=60.0,
            min_samples=10,
            failure_limit=2,
            thresholds=Thresholds(max_error_rate=0.1, max_latency_p95_ratio=2.0),
        ),
        "bake_s": 30.0,
        "progress_deadline_s": 120.0,
        "drain_s": 20.0,
    }
    plan.update(rollout)
    return VersionSpec(
        version=CANARY,
        model="adain.lite0-v1",
        family="adain",
        alias="adain",
        pool="h100",
        gpu_memory_gib=6,
        rollout=RolloutSpec(**plan),
    )


def observe(**fields: Any) -> Observation:
    base: dict[str, Any] = {
        "now": T0,
        "name": "adain-v2",
        "created": T0 - timedelta(minutes=5),
        "generation": 1,
        "spec": version_spec(),
        "status": Status(observed_generation=1),
        "endpoint": "inference-adain-lite0-v2.ns.svc:50055",
        "route": ((STABLE, 100),),
    }
    base.update(fields)
    return Observation(**base)


class World:
    """Feeds each decision back: the status is stored, the route applied, time advances."""

    def __init__(self, spec: VersionSpec | None = None, **fields: Any) -> None:
        self.obs = observe(spec=spec or version_spec(), **fields)
        self.events: list[str] = []

    @property
    def status(self) -> Status:
        return self.obs.status

    def tick(self, seconds: float = 0.0, **fields: Any) -> Decision:
        now = self.obs.now + timedelta(seconds=seconds)
        spec = self.obs.spec
        assert isinstance(spec, VersionSpec)
        due = analysis_due(self.obs.status, spec, now)
        measured: dict[str, Any] = {"stats": None, "stable_stats": None}
        if due:
            measured = {"stats": fields.pop("stats", GOOD), "stable_stats": STABLE_STATS}
        else:
            fields.pop("stats", None)
        obs = replace(self.obs, now=now, **{**measured, **fields})
        decision = decide(obs)
        self.events += [e.reason for e in decision.events]
        route = decision.route if decision.route is not None else obs.route
        self.obs = replace(
            obs, status=decision.status, route=route, action="", quality=None, stable_quality=None
        )
        return decision

    def to_canary(self) -> None:
        self.tick(admission=FITS)
        self.tick(1, deployment=READY, endpoint_ready=True, quality=QUALITY, stable_quality=QUALITY)
        assert self.status.phase is Phase.CANARY


# -- placement and warm-up -----------------------------------------------------------------


def test_admitted_version_is_placed_and_its_deployment_created() -> None:
    decision = decide(observe(admission=FITS))
    assert decision.status.phase is Phase.PLACING
    assert decision.replicas == 1
    assert decision.status.placement is not None
    assert decision.status.placement.gpus_per_replica == 1
    assert decision.status.condition("Placed").status == "True"  # type: ignore[union-attr]
    assert [e.reason for e in decision.events] == ["Placed"]


def test_a_pool_that_cannot_hold_it_creates_nothing_and_says_why_once() -> None:
    refused = Admission(fits=False, reason="InsufficientGPUMemory", message="needs 80 GiB, 40 free")
    first = decide(observe(admission=refused))
    assert first.status.phase is Phase.PENDING
    assert first.replicas is None
    assert first.route is None
    placed = first.status.condition("Placed")
    assert placed is not None
    assert (placed.status, placed.reason) == ("False", "InsufficientGPUMemory")
    assert placed.message == "needs 80 GiB, 40 free"
    again = decide(observe(admission=refused, status=first.status))
    assert again.events == ()


@pytest.mark.parametrize(
    ("problem", "reason"),
    [
        (InvalidSpec("PoolNotFound", "GPUPool 'h100' does not exist"), "PoolNotFound"),
        (InvalidSpec("WeightsMismatch", "sha256 differs"), "WeightsMismatch"),
        (InvalidSpec("UnknownFamily", "family 'dreams'"), "UnknownFamily"),
    ],
)
def test_problems_end_as_failed_with_a_condition(problem: InvalidSpec, reason: str) -> None:
    decision = decide(observe(problem=problem, admission=FITS))
    assert decision.status.phase is Phase.FAILED
    ready = decision.status.condition("Ready")
    assert ready is not None
    assert (ready.status, ready.reason) == ("False", reason)
    assert decision.replicas is None
    assert decision.events[0].warning


def test_an_invalid_spec_fails_without_touching_anything() -> None:
    decision = decide(observe(spec=InvalidSpec("InvalidSteps", "weights must rise")))
    assert decision.status.phase is Phase.FAILED
    assert decision.status.message == "weights must rise"
    assert decision.replicas is None
    assert decision.route is None


def test_two_versions_of_an_alias_go_one_at_a_time() -> None:
    earlier = Peer("adain-v3", "adain.lite0-v3", Phase.CANARY, created=T0 - timedelta(hours=1))
    decision = decide(observe(peers=(earlier,), admission=FITS))
    assert decision.status.phase is Phase.PENDING
    placed = decision.status.condition("Placed")
    assert placed is not None
    assert placed.reason == "WaitingForRollout"
    assert "adain-v3" in decision.status.message
    later = Peer("adain-v4", "adain.lite0-v4", Phase.PENDING, created=T0)
    assert decide(observe(peers=(later,), admission=FITS)).status.phase is Phase.PLACING
    baking = Peer("adain-v0", "adain.lite0-v0", Phase.PROMOTING, created=T0)
    assert decide(observe(peers=(baking,), admission=FITS)).status.phase is Phase.PENDING


def test_same_creation_time_is_ordered_by_name() -> None:
    twin = Peer("adain-a", "adain.lite0-va", Phase.PENDING, created=T0 - timedelta(minutes=5))
    assert decide(observe(peers=(twin,), admission=FITS)).status.phase is Phase.PENDING
    twin_b = replace(twin, name="adain-z")
    assert decide(observe(peers=(twin_b,), admission=FITS)).status.phase is Phase.PLACING


@pytest.mark.parametrize(
    ("deployment", "ready", "phase", "reason"),
    [
        (None, False, Phase.PLACING, "Creating"),
        (
            DeploymentState(1, 0, unschedulable="0/2 nodes: Insufficient nvidia.com/gpu"),
            False,
            Phase.PLACING,
            "Unschedulable",
        ),
        (DeploymentState(1, 0), False, Phase.WARMING, "ReplicasNotReady"),
        (READY, False, Phase.WARMING, "EndpointNotReady"),
    ],
)
def test_warm_up_waits_and_says_for_what(
    deployment: DeploymentState | None, ready: bool, phase: Phase, reason: str
) -> None:
    world = World()
    world.tick(admission=FITS)
    decision = world.tick(1, deployment=deployment, endpoint_ready=ready)
    assert decision.status.phase is phase
    condition = decision.status.condition("Ready")
    assert condition is not None
    assert condition.reason == reason
    assert decision.route == ((STABLE, 100),) or decision.route is None
    if deployment is not None and deployment.unschedulable:
        assert "Insufficient nvidia.com/gpu" in decision.status.message


def test_ready_and_measured_starts_the_canary_at_the_first_weight() -> None:
    world = World()
    world.to_canary()
    assert world.status.weight == 20
    assert world.status.stable_version == STABLE
    assert world.obs.route == ((STABLE, 80), (CANARY, 20))
    assert world.status.quality == QUALITY
    assert world.events == ["Placed", "CanaryStarted"]


def test_the_first_version_of_an_alias_takes_it_whole() -> None:
    world = World(route=None)
    world.tick(admission=FITS)
    decision = world.tick(1, deployment=READY, endpoint_ready=True, quality=QUALITY)
    assert decision.status.phase is Phase.STABLE
    assert decision.route == ((CANARY, 100),)
    assert decision.register
    assert "Initialized" in world.events


def test_warm_up_past_the_deadline_fails_and_releases_the_gpus() -> None:
    world = World()
    world.tick(admission=FITS)
    world.tick(10, deployment=DeploymentState(1, 0))
    decision = world.tick(200, deployment=DeploymentState(1, 0))
    assert decision.status.phase is Phase.FAILED
    assert decision.replicas == 0
    assert "not ready within 120s" in decision.status.message
    assert "0/1 inference replicas available" in decision.status.message


# -- the canary --------------------------------------------------------------------------


def test_a_healthy_canary_walks_its_steps_bakes_and_becomes_stable() -> None:
    world = World()
    world.to_canary()
    world.tick(5, deployment=READY)  # check 1 passes, the 10 s pause is not over
    assert world.status.step == 0
    world.tick(6, deployment=READY)  # pause over, the step's check passed
    assert (world.status.step, world.status.weight) == (1, 50)
    assert world.obs.route == ((STABLE, 50), (CANARY, 50))
    world.tick(1, deployment=READY)  # no check yet in this step: hold
    assert world.status.step == 1
    world.tick(10, deployment=READY)  # check passes and pause over: promote
    assert world.status.phase is Phase.PROMOTING
    assert world.obs.route == ((CANARY, 100), (STABLE, 0))
    assert world.status.baseline is not None
    assert world.status.baseline.latency_p95_ms == 300
    world.tick(10, deployment=READY)
    assert world.status.phase is Phase.PROMOTING
    world.tick(25, deployment=READY)
    assert world.status.phase is Phase.STABLE
    assert world.events == [
        "Placed",
        "CanaryStarted",
        "StepAdvanced",
        "Promoted",
        "Stable",
    ]


def test_a_failing_canary_rolls_back_naming_the_metric() -> None:
    world = World()
    world.to_canary()
    world.tick(5, deployment=READY, stats=BAD)
    assert world.status.failed_checks == 1
    assert world.status.phase is Phase.CANARY
    decision = world.tick(5, deployment=READY, stats=BAD)
    assert decision.status.phase is Phase.ROLLED_BACK
    assert decision.route == ((STABLE, 100),)
    assert decision.status.weight == 0
    assert "error rate 0.500 > 0.1" in decision.status.message
    analysis = decision.status.condition("Analysis")
    assert analysis is not None
    assert analysis.reason == "AnalysisFailed"
    assert world.events[-2:] == ["AnalysisFailed", "RolledBack"]


def test_breaches_during_a_pause_count() -> None:
    world = World(version_spec(steps=(Step(20, 3600.0), Step(50, 3600.0))))
    world.to_canary()
    world.tick(5, deployment=READY, stats=BAD)
    world.tick(5, deployment=READY, stats=BAD)
    assert world.status.phase is Phase.ROLLED_BACK


def test_freeze_holds_the_weights_for_a_person() -> None:
    world = World(version_spec(on_failure="freeze"))
    world.to_canary()
    world.tick(5, deployment=READY, stats=BAD)
    world.tick(5, deployment=READY, stats=BAD)
    assert world.status.phase is Phase.FROZEN
    assert world.obs.route == ((STABLE, 80), (CANARY, 20))
    held = world.tick(60, deployment=READY)
    assert held.status.phase is Phase.FROZEN
    assert held.route == ((STABLE, 80), (CANARY, 20))
    promoted = world.tick(1, deployment=READY, action="promote")
    assert promoted.status.phase is Phase.PROMOTING
    assert promoted.clear_action


def test_abort_by_hand() -> None:
    world = World()
    world.to_canary()
    decision = world.tick(1, deployment=READY, action="abort")
    assert decision.status.phase is Phase.ROLLED_BACK
    assert decision.route == ((STABLE, 100),)
    assert decision.clear_action
    assert "aborted by hand" in decision.status.message


def test_promote_by_hand_skips_the_remaining_steps() -> None:
    world = World()
    world.to_canary()
    decision = world.tick(1, deployment=READY, action="promote")
    assert decision.status.phase is Phase.PROMOTING
    assert decision.route == ((CANARY, 100), (STABLE, 0))


def test_paused_runs_checks_but_holds_the_step() -> None:
    spec = replace(version_spec(), paused=True)
    world = World(spec)
    world.to_canary()
    for _ in range(5):
        world.tick(6, deployment=READY)
    assert (world.status.phase, world.status.step) == (Phase.CANARY, 0)
    assert world.status.analysis is not None
    assert "paused" in world.status.message


def test_a_canary_without_replicas_is_inconclusive_then_rolled_back() -> None:
    world = World()
    world.to_canary()
    lost = DeploymentState(1, 0)
    held = world.tick(5, deployment=lost)
    assert held.status.phase is Phase.CANARY
    assert held.status.analysis is not None
    assert held.status.analysis.check.verdict.value == "Inconclusive"
    assert held.status.condition("Ready").reason == "ReplicasUnavailable"  # type: ignore[union-attr]
    back = world.tick(60, deployment=READY)
    assert back.status.unavailable_since is None
    world.tick(1, deployment=lost)
    gone = world.tick(125, deployment=lost)
    assert gone.status.phase is Phase.ROLLED_BACK
    assert "lost its replicas" in gone.status.message


def test_a_breach_during_the_bake_rolls_back_to_n_minus_1() -> None:
    world = World()
    world.to_canary()
    world.tick(5, deployment=READY)
    world.tick(6, deployment=READY)
    world.tick(10, deployment=READY)
    assert world.status.phase is Phase.PROMOTING
    world.tick(5, deployment=READY, stats=BAD)
    decision = world.tick(5, deployment=READY, stats=BAD)
    assert decision.status.phase is Phase.ROLLED_BACK
    assert decision.route == ((STABLE, 100),)
    assert "after promotion" in decision.status.message


# -- restarts ---------------------------------------------------------------------------


def test_a_crash_after_the_status_write_redoes_the_route_without_a_new_step() -> None:
    world = World()
    world.to_canary()
    world.tick(5, deployment=READY)
    advanced = world.tick(6, deployment=READY)
    assert advanced.status.step == 1
    # The operator died after writing the status: the route still has the old weights.
    crashed = replace(world.obs, route=((STABLE, 80), (CANARY, 20)), now=world.obs.now)
    again = decide(replace(crashed, now=crashed.now + timedelta(seconds=1)))
    assert again.status.step == 1
    assert again.route == ((STABLE, 50), (CANARY, 50))
    assert "StepAdvanced" not in [e.reason for e in again.events]


def test_deciding_twice_on_the_same_observation_gives_the_same_decision() -> None:
    world = World()
    world.to_canary()
    obs = replace(world.obs, now=world.obs.now + timedelta(seconds=5), stats=GOOD, deployment=READY)
    assert decide(obs) == decide(obs)


# -- after the rollout ------------------------------------------------------------------


def stable_status(promoted: datetime) -> Status:
    return Status(phase=Phase.STABLE, promoted_at=promoted, weight=100, observed_generation=1)


def test_stable_is_superseded_by_a_later_promotion_and_scaled_down_after_its_bake() -> None:
    mine = stable_status(T0 - timedelta(days=1))
    newer = Peer("adain-v3", "adain.lite0-v3", Phase.PROMOTING, T0, promoted_at=T0)
    decision = decide(observe(status=mine, peers=(newer,)))
    assert decision.status.phase is Phase.SUPERSEDED
    assert decision.replicas == 1
    baking = decide(observe(status=decision.status, peers=(newer,)))
    assert baking.replicas == 1
    done = decide(observe(status=decision.status, peers=(replace(newer, phase=Phase.STABLE),)))
    assert done.replicas == 0
    assert done.status.phase is Phase.SUPERSEDED


def test_superseded_serves_again_when_its_successor_rolled_back() -> None:
    old = replace(stable_status(T0 - timedelta(days=1)), phase=Phase.SUPERSEDED, weight=0)
    failed = Peer("adain-v3", "adain.lite0-v3", Phase.ROLLED_BACK, T0, promoted_at=T0)
    decision = decide(observe(status=old, peers=(failed,), route=((CANARY, 100),)))
    assert decision.status.phase is Phase.STABLE
    assert "ServingAgain" in [e.reason for e in decision.events]


def test_rolling_back_to_n_minus_1_by_hand_is_one_annotation() -> None:
    old = replace(stable_status(T0 - timedelta(days=1)), phase=Phase.SUPERSEDED, weight=0)
    newer = Peer("adain-v3", "adain.lite0-v3", Phase.STABLE, T0, promoted_at=T0)
    world = World(status=old, peers=(newer,), route=(("adain.lite0-v3", 100),))
    world.obs = replace(world.obs, status=replace(old, quality=QUALITY))
    restoring = world.tick(1, action="promote")
    assert restoring.status.phase is Phase.PENDING
    assert restoring.status.restoring
    world.tick(1, admission=FITS)
    restored = world.tick(1, deployment=READY, endpoint_ready=True)
    assert restored.status.phase is Phase.STABLE
    assert restored.route == ((CANARY, 100),)
    assert world.events[-1] == "Restored"
    assert restored.status.promoted_at is not None
    assert restored.status.promoted_at > T0


def test_rolled_back_drains_then_scales_to_zero() -> None:
    rolled = Status(
        phase=Phase.ROLLED_BACK,
        stable_version=STABLE,
        finished_at=T0,
        observed_generation=1,
    )
    assert decide(observe(status=rolled, now=T0 + timedelta(seconds=5))).replicas == 1
    assert decide(observe(status=rolled, now=T0 + timedelta(seconds=25))).replicas == 0
    leaked: Route = ((STABLE, 90), (CANARY, 10))
    assert decide(observe(status=rolled, route=leaked)).route == ((STABLE, 100),)


def test_a_new_generation_or_retry_restarts_a_rolled_back_version() -> None:
    rolled = Status(phase=Phase.ROLLED_BACK, observed_generation=1, stable_version=STABLE)
    decision = decide(observe(status=rolled, generation=2, admission=FITS))
    assert decision.status.phase is Phase.PLACING
    assert decision.status.observed_generation == 2
    retried = decide(observe(status=rolled, action="retry", admission=FITS))
    assert retried.status.phase is Phase.PLACING
    assert retried.clear_action


def test_unknown_or_misplaced_actions_are_reported_and_cleared() -> None:
    unknown = decide(observe(action="yolo", admission=FITS))
    assert next(e.reason for e in unknown.events) == "UnknownAction"
    assert unknown.clear_action
    stable = decide(observe(status=stable_status(T0), action="abort"))
    assert "ActionIgnored" in [e.reason for e in stable.events]


def test_the_analysis_window_starts_with_the_stage() -> None:
    spec = version_spec()
    status = Status(phase=Phase.CANARY, canary_started_at=T0)
    assert stats_since(status, spec, T0 + timedelta(seconds=30)) == T0
    assert stats_since(status, spec, T0 + timedelta(seconds=90)) == T0 + timedelta(seconds=30)
    baking = Status(
        phase=Phase.PROMOTING, canary_started_at=T0, promoted_at=T0 + timedelta(hours=1)
    )
    assert stats_since(baking, spec, T0 + timedelta(hours=1, seconds=10)) == baking.promoted_at


def test_a_broken_version_fails_at_once_even_when_it_would_have_to_wait() -> None:
    earlier = Peer("adain-v3", "adain.lite0-v3", Phase.CANARY, created=T0 - timedelta(hours=1))
    problem = InvalidSpec("PoolNotFound", "GPUPool 'h100' does not exist")
    decision = decide(observe(peers=(earlier,), problem=problem))
    assert decision.status.phase is Phase.FAILED
