"""The operator against the simulated GPU cluster: rollouts, failures, restarts, lost nodes.

The operator runs as its own process; the mesh is scripted (tests/helpers/fake_mesh.py)
so each test decides what the canary's metrics say. tests/e2e/test_operator_rollout.py
runs the same operator against the real mesh with jobs flowing.
"""

from __future__ import annotations

import json
from itertools import groupby
from typing import Any

import pytest

from tests.helpers.fake_mesh import MeshState, Stats
from tests.integration.operator.conftest import OperatorWorld

pytestmark = pytest.mark.k8s

STABLE = "adain.lite0-v1"
HEALTHY = Stats(succeeded=50, failed=0, p95_ms=320)


def canary(name: str) -> str:
    return f"adain.lite0-v1-{name}"


def script(world: OperatorWorld, name: str, stats: Stats = HEALTHY) -> None:
    """The canary is ready at its endpoint and reports `stats`; stable is healthy."""

    def change(state: MeshState) -> None:
        state.ready.add(canary(name))
        state.stats[canary(name)] = stats
        state.stats[STABLE] = Stats(succeeded=500, p95_ms=300)

    world.mesh.update(change)


def collapsed(history: list[tuple[tuple[str, int], ...]]) -> list[dict[str, int]]:
    """Route changes in order, repeats of the same route folded (a re-apply after a crash)."""
    return [dict(route) for route, _ in groupby(history)]


def test_a_healthy_canary_walks_its_steps_to_stable(operator_world: OperatorWorld) -> None:
    world = operator_world
    pool = world.pool("h100", nodes=2, gpus=4)
    script(world, "r2")
    world.apply_version("r2", pool)
    status = world.wait_phase("r2", "Stable", timeout=90)
    assert status["weight"] == 100
    assert status["stableVersion"] == STABLE
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Placed": "True",
        "Ready": "True",
        "Analysis": "True",
    }
    assert status["lastAnalysis"]["verdict"] == "Pass"
    assert collapsed(world.mesh.route_history("adain")) == [
        {STABLE: 80, canary("r2"): 20},
        {STABLE: 50, canary("r2"): 50},
        {canary("r2"): 100, STABLE: 0},
    ]
    assert world.mesh.state.endpoints[canary("r2")] == world.mesh.address
    deployment = world.deployment(canary("r2"))
    assert deployment is not None
    assert deployment["status"].get("availableReplicas") == 1
    assert deployment["metadata"]["ownerReferences"][0]["name"] == "r2"
    reasons = [reason for reason, _ in world.events("r2")]
    for expected in ("Placed", "CanaryStarted", "StepAdvanced", "Promoted", "Stable"):
        assert expected in reasons
    table = world.cluster.kubectl("get", "mv", "-n", world.namespace).stdout
    assert "Stable" in table
    assert "100" in table


def test_a_failing_canary_is_rolled_back_with_the_metric_named(
    operator_world: OperatorWorld,
) -> None:
    world = operator_world
    pool = world.pool("h100", nodes=1, gpus=4)
    script(world, "bad", Stats(succeeded=10, failed=10, p95_ms=300))
    world.apply_version("bad", pool)
    status = world.wait_phase("bad", "RolledBack", timeout=90)
    assert "error rate 0.500 > 0.1" in status["message"]
    assert f"back on {STABLE}" in status["message"]
    assert status["weight"] == 0
    assert world.mesh.route("adain") == {STABLE: 100}
    analysis = next(c for c in status["conditions"] if c["type"] == "Analysis")
    assert (analysis["status"], analysis["reason"]) == ("False", "AnalysisFailed")
    assert ("RolledBack", status["message"]) in world.events("bad")
    # After the drain, the rolled-back version gives its GPUs back.
    world.wait(
        lambda: (d := world.deployment(canary("bad"))) is not None and d["spec"]["replicas"] == 0,
        "the rolled-back Deployment to scale to zero",
    )


@pytest.mark.parametrize(
    ("name", "spec", "reason"),
    [
        ("unknown-family", {"family": "dreams"}, "UnknownFamily"),
        (
            "bad-sha",
            {
                "weights": {
                    "uri": "package://gouache.nst/weights/adain.lite0-v1",
                    "sha256": "0" * 64,
                }
            },
            "WeightsMismatch",
        ),
        ("no-pool", {"pool": "nowhere"}, "PoolNotFound"),
        (
            "s3",
            {"weights": {"uri": "s3://models/adain", "sha256": "1" * 64}},
            "UnsupportedWeightsUri",
        ),
    ],
)
def test_resources_the_schema_accepts_but_the_operator_cannot_serve_fail_cleanly(
    operator_world: OperatorWorld, name: str, spec: dict[str, Any], reason: str
) -> None:
    world = operator_world
    pool = world.pool("h100", nodes=1, gpus=4)
    spec = dict(spec)
    world.apply_version(name, spec.pop("pool", pool), **spec)
    status = world.wait_phase(name, "Failed")
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", reason)
    assert status["message"]
    assert world.deployment(canary(name)) is None
    assert world.operator.process is not None
    assert world.operator.process.poll() is None
    # The operator keeps serving: a valid version after the bad one goes through.
    script(world, "ok")
    world.apply_version(
        "ok",
        pool,
        rollout={
            "steps": [{"weight": 50}],
            "bake": "0s",
            "analysis": {"interval": "1s", "minSamples": 5},
        },
    )
    world.wait_phase("ok", "Stable", timeout=90)


def test_placement_is_memory_aware_across_two_pools(operator_world: OperatorWorld) -> None:
    world = operator_world
    big = world.pool("big", nodes=1, gpus=4, gpu_memory_gib=80)
    small = world.pool("small", nodes=1, gpus=2, gpu_memory_gib=40)
    for name in ("one", "two", "three"):
        script(world, name)
    # 200 GiB on 80 GiB GPUs: 3 of the big pool's 4 GPUs.
    world.apply_version("one", big, alias="alias-one", resources={"gpuMemoryGiB": 200})
    world.wait_phase("one", "Stable", timeout=90)
    # 100 GiB needs 2 GPUs (160 GiB); one is left: refused, and nothing is created.
    world.apply_version("two", big, alias="alias-two", resources={"gpuMemoryGiB": 100})
    status = world.wait(
        lambda: (s := world.status("two")).get("conditions") and s,
        "a condition on ModelVersion two",
    )
    placed = next(c for c in status["conditions"] if c["type"] == "Placed")
    assert (placed["status"], placed["reason"]) == ("False", "InsufficientGPUMemory")
    assert "needs 160 GiB" in placed["message"]
    assert "80 GiB free" in placed["message"]
    assert world.deployment(canary("two")) is None
    # 60 GiB on the small pool's 40 GiB GPUs: both of its GPUs, on its node.
    world.apply_version("three", small, alias="alias-three", resources={"gpuMemoryGiB": 60})
    world.wait_phase("three", "Stable", timeout=90)
    three = world.deployment(canary("three"))
    assert three is not None
    limits = three["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "2"
    pods = world.cluster.kubectl(
        "get",
        "pods",
        "-n",
        world.namespace,
        "-l",
        "app.kubernetes.io/instance=three",
        "-o",
        "jsonpath={.items[*].spec.nodeName}",
    ).stdout.split()
    assert pods == [f"{small}-n0"]
    pool_status = world.wait(
        lambda: (
            (p := world.cluster.api_get(f"/apis/gouache.dev/v1alpha1/gpupools/{big}"))
            and p.get("status", {}).get("allocated", {}).get("gpus") == 3
            and p["status"]
        ),
        "the big pool's status to count 3 allocated GPUs",
    )
    assert pool_status["free"] == {"gpus": 1, "gpuMemoryGiB": 80}
    # Deleting the first version frees its GPUs, and the waiting one is placed.
    world.delete_version("one")
    world.wait_phase("two", "Stable", timeout=90)


def test_the_scheduler_refuses_what_a_fragmented_pool_cannot_hold(
    operator_world: OperatorWorld,
) -> None:
    world = operator_world
    pool = world.pool("frag", nodes=2, gpus=4)
    for index in range(2):
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"other-{index}", "namespace": world.namespace},
            "spec": {
                "nodeName": f"{pool}-n{index}",
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
                "containers": [
                    {
                        "name": "c",
                        "image": "other",
                        "resources": {"limits": {"nvidia.com/gpu": "2"}},
                    }
                ],
            },
        }
        world.cluster.kubectl("apply", "-f", "-", input=json.dumps(pod))
    script(world, "frag")
    # 240 GiB = 3 GPUs: 4 are free in the pool, but no node has 3.
    world.apply_version("frag", pool, resources={"gpuMemoryGiB": 240})
    status = world.wait(
        lambda: (
            (s := world.status("frag")).get("phase") == "Placing"
            and any(c.get("reason") == "Unschedulable" for c in s.get("conditions", []))
            and s
        ),
        "the version to report the scheduler's refusal",
    )
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert "Insufficient nvidia.com/gpu" in ready["message"]
    placed = next(c for c in status["conditions"] if c["type"] == "Placed")
    assert placed["status"] == "True"


def test_deleting_a_canary_gives_its_traffic_back_and_collects_its_objects(
    operator_world: OperatorWorld,
) -> None:
    world = operator_world
    pool = world.pool("h100", nodes=1, gpus=4)
    script(world, "gone")
    world.apply_version("gone", pool, rollout={"steps": [{"weight": 30, "pause": "1h"}]})
    world.wait_phase("gone", "Canary", timeout=90)
    world.wait(
        lambda: world.mesh.route("adain") == {STABLE: 70, canary("gone"): 30}, "canary route"
    )
    assert world.deployment(canary("gone")) is not None
    world.delete_version("gone")
    assert world.mesh.route("adain") == {STABLE: 100}
    world.wait(lambda: world.deployment(canary("gone")) is None, "the Deployment to be collected")
    world.wait(
        lambda: (
            world.cluster.api_get(
                f"/api/v1/namespaces/{world.namespace}/services/inference-adain-lite0-v1-gone"
            )
            is None
        ),
        "the Service to be collected",
    )


def test_a_restart_mid_rollout_resumes_without_repeating_or_skipping_a_step(
    operator_world: OperatorWorld,
) -> None:
    world = operator_world
    pool = world.pool("h100", nodes=1, gpus=4)
    script(world, "restart")
    steps = [
        {"weight": 20, "pause": "3s"},
        {"weight": 50, "pause": "3s"},
        {"weight": 80, "pause": "3s"},
    ]
    world.apply_version(
        "restart",
        pool,
        rollout={
            "steps": steps,
            "bake": "1s",
            "analysis": {"interval": "1s", "minSamples": 5, "failureLimit": 2},
        },
    )
    world.wait(lambda: world.status("restart").get("step") == 1, "step 2 of 3", timeout=90)
    world.operator.kill()
    before = world.status("restart")
    world.operator.start()
    world.wait_phase("restart", "Stable", timeout=90)
    assert before["phase"] == "Canary"
    assert collapsed(world.mesh.route_history("adain")) == [
        {STABLE: 80, canary("restart"): 20},
        {STABLE: 50, canary("restart"): 50},
        {STABLE: 20, canary("restart"): 80},
        {canary("restart"): 100, STABLE: 0},
    ]
    advanced = [m for r, m in world.events("restart") if r == "StepAdvanced"]
    assert len(advanced) <= 2
    assert all(advanced.count(m) == 1 for m in advanced)


def test_a_node_lost_during_a_canary(operator_world: OperatorWorld) -> None:
    world = operator_world
    pool = world.pool("lost", nodes=2, gpus=1)
    script(world, "lost")
    world.apply_version("lost", pool, rollout={"steps": [{"weight": 20, "pause": "1h"}]})
    world.wait_phase("lost", "Canary", timeout=90)

    def node_of_pod() -> str:
        """The node of the canary's live pod (one stuck Terminating on a lost node is not)."""
        listed = world.cluster.api_get(
            f"/api/v1/namespaces/{world.namespace}/pods"
            "?labelSelector=app.kubernetes.io/instance%3Dlost"
        )
        live = [
            pod["spec"].get("nodeName", "")
            for pod in (listed or {}).get("items", [])
            if pod["status"].get("phase") == "Running"
            and not pod["metadata"].get("deletionTimestamp")
        ]
        return live[0] if len(live) == 1 else ""

    first = world.wait(node_of_pod, "the canary pod to run")
    world.cluster.set_node_unmanaged(first)
    lost = world.wait(
        lambda: (
            (s := world.status("lost"))
            and any(c.get("reason") == "ReplicasUnavailable" for c in s.get("conditions", []))
            and s
        ),
        "the canary to report its lost replica",
        timeout=120,
    )
    assert lost["phase"] == "Canary"
    back = world.wait(
        lambda: (
            (s := world.status("lost"))
            and any(c["type"] == "Ready" and c["status"] == "True" for c in s.get("conditions", []))
            and s
        ),
        "the canary to be Ready again on the other node",
        timeout=120,
    )
    assert back["phase"] == "Canary"
    assert back["weight"] == 20
    assert world.wait(lambda: (n := node_of_pod()) and n != first and n, "a pod elsewhere")
    pool_status = world.wait(
        lambda: (
            (p := world.cluster.api_get(f"/apis/gouache.dev/v1alpha1/gpupools/{pool}"))
            and p.get("status", {}).get("readyNodes") == 1
            and p["status"]
        ),
        "the pool to count one Ready node",
    )
    assert pool_status["capacity"]["gpus"] == 1


def test_one_canary_per_alias_and_actions_by_hand(operator_world: OperatorWorld) -> None:
    world = operator_world
    pool = world.pool("h100", nodes=1, gpus=4)
    script(world, "first")
    script(world, "second")
    slow = {"steps": [{"weight": 10, "pause": "1h"}], "bake": "2s"}
    world.apply_version("first", pool, rollout=slow)
    world.wait_phase("first", "Canary", timeout=90)
    world.apply_version("second", pool, rollout=slow)
    waiting = world.wait(
        lambda: (s := world.status("second")).get("message", "").startswith("waiting") and s,
        "the second version to wait",
    )
    assert "ModelVersion first" in waiting["message"]
    assert world.deployment(canary("second")) is None
    world.cluster.kubectl(
        "annotate", "mv", "first", "-n", world.namespace, "gouache.dev/action=abort"
    )
    aborted = world.wait_phase("first", "RolledBack")
    assert "aborted by hand" in aborted["message"]
    assert "gouache.dev/action" not in world.version("first")["metadata"].get("annotations", {})
    world.wait_phase("second", "Canary", timeout=90)
    world.cluster.kubectl(
        "annotate", "mv", "second", "-n", world.namespace, "gouache.dev/action=promote"
    )
    world.wait_phase("second", "Stable", timeout=60)
    assert world.mesh.route("adain")[canary("second")] == 100


def test_rollback_to_n_minus_1_is_one_annotation(operator_world: OperatorWorld) -> None:
    world = operator_world
    pool = world.pool("h100", nodes=1, gpus=4)
    quick = {
        "steps": [{"weight": 50}],
        "bake": "1s",
        "analysis": {"interval": "1s", "minSamples": 5},
    }
    script(world, "n1")
    script(world, "n2")
    world.apply_version("n1", pool, alias="painterly", rollout=quick)
    world.wait_phase("n1", "Stable", timeout=90)  # the alias's first version
    world.apply_version("n2", pool, alias="painterly", rollout=quick)
    world.wait_phase("n2", "Stable", timeout=90)
    world.wait_phase("n1", "Superseded")
    world.wait(
        lambda: (d := world.deployment(canary("n1"))) is not None and d["spec"]["replicas"] == 0,
        "N-1 scaled down once N's bake is over",
    )
    world.cluster.kubectl(
        "annotate", "mv", "n1", "-n", world.namespace, "gouache.dev/action=promote"
    )
    world.wait_phase("n1", "Stable", timeout=90)
    world.wait_phase("n2", "Superseded")
    assert world.mesh.route("painterly") == {canary("n1"): 100}
