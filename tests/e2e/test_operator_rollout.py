"""Canaries end to end: the embedded mesh, a simulated GPU cluster and the operator, with jobs.

The mesh runs as `gouache up` starts it; its inference serves the version the `adain` alias
routes to out of the box and, under two more version names, the build the ModelVersions
name (that same network): `<build>-r2` healthy and `<build>-r3` with a test-only fault
that fails every call. While clients send jobs for the `adain` alias through the REST API
(and rate them), a platform team `kubectl apply`s a
ModelVersion for r2, which walks its steps to Stable; then one for r3, which is rolled
back with the failing metric on the resource. Every job created reaches a final state.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gouache import catalogue
from gouache.cli.mesh import UNLIMITED_PLANS, Mesh, MeshConfig, MeshPorts
from gouache.client import GouacheClient
from gouache.client.rest import ApiError
from tests.e2e.images import small
from tests.fixtures.kube import KubeCluster
from tests.helpers.operator import CRDS, OperatorProcess, RolloutWorld

pytestmark = [pytest.mark.k8s, pytest.mark.slow]

# What the `adain` alias routes to out of the box; the canaries are new names for the same
# build, so the quality gate compares a network with itself and only the fault differs.
STABLE = catalogue.aliases()["adain"][0].model_version
BUILD = STABLE
HEALTHY = f"{BUILD}-r2"
FAULTY = f"{BUILD}-r3"


def _build_spec(version: str) -> dict[str, Any]:
    """The ModelVersion fields that name BUILD's network and weights, served as `version`."""
    entry = catalogue.get(BUILD)
    assert entry.artifact is not None
    return {
        "version": version,
        "model": entry.name,
        "family": entry.family,
        "weights": {
            "uri": catalogue.artifact_uri(entry),
            "sha256": entry.artifact.manifest_sha256,
        },
    }


CLIENTS = 2
RESULTS = Path(__file__).resolve().parents[2] / ".gouache" / "operator-e2e.json"


@pytest.fixture(scope="module")
def rollout_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    """The embedded mesh serving three version names for the adain alias, one of them faulty."""
    state = tmp_path_factory.mktemp("rollout-mesh")
    config = MeshConfig(
        state_dir=state,
        ports=MeshPorts.ephemeral(),
        models=f"{STABLE},{HEALTHY}={BUILD},{FAULTY}={BUILD}",
        extra_env={
            "GOUACHE_INFERENCE_FAULTS": json.dumps({FAULTY: {"error_rate": 1.0}}),
            "GOUACHE_TILING_MAX_DELIVER": "2",
            "GOUACHE_TILING_RETRY_INITIAL_S": "0.2",
            "GOUACHE_TILING_ACK_WAIT_S": "5",
            # The traffic repeats one request: the analysis needs every job to run its version.
            "GOUACHE_JOBS_RESULT_CACHE_MAX_ENTRIES": "0",
        },
        rate_limit_plans=UNLIMITED_PLANS,
    )
    mesh = Mesh(config)
    try:
        mesh.start()
    except BaseException:
        for log in sorted((state / "logs").glob("*.log")):
            print(f"--- {log.name}\n{log.read_text()[-3000:]}")
        raise
    yield mesh
    mesh.stop()


@pytest.fixture(scope="module")
def world(
    rollout_mesh: Mesh, kube_cluster: KubeCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RolloutWorld]:
    """A namespace and a GPU pool in the cluster, and the operator pointed at the mesh."""
    kube_cluster.install_crds(CRDS)
    namespace = kube_cluster.namespace(f"e2e-{uuid.uuid4().hex[:8]}")
    account = json.loads((rollout_mesh.config.state_dir / "operator.json").read_text())
    inference = account["inference_addr"]
    env = {
        "KUBECONFIG": str(kube_cluster.kubeconfig),
        "GOUACHE_OPERATOR_NAMESPACES": namespace,
        "GOUACHE_OPERATOR_API_KEY": account["api_key"],
        "GOUACHE_OPERATOR_AUTH_ADDR": account["auth_addr"],
        "GOUACHE_OPERATOR_JOBS_ADDR": account["jobs_addr"],
        "GOUACHE_OPERATOR_FEEDBACK_ADDR": account["feedback_addr"],
        # One machine: every version's inference is the embedded one.
        "GOUACHE_OPERATOR_DEFAULT_INFERENCE_ADDR": inference,
        "GOUACHE_OPERATOR_ENDPOINT_TEMPLATE": inference,
        "GOUACHE_OPERATOR_TICK_S": "0.5",
        "GOUACHE_OPERATOR_POOL_TICK_S": "2",
        "GOUACHE_OPERATOR_WATCH_TIMEOUT_S": "20",
        "GOUACHE_OPERATOR_LOG_JSON": "false",
    }
    operator = OperatorProcess(env=env, log_path=tmp_path_factory.mktemp("operator") / "log")
    operator.start()
    running = RolloutWorld(kube_cluster, namespace, operator)
    try:
        yield running
    finally:
        kube_cluster.kubectl(
            "delete", "mv", "--all", "-n", namespace, "--wait=true", "--timeout=30s", check=False
        )
        operator.stop()
        for pool in running.pools:
            kube_cluster.kubectl("delete", "gpupool", pool, "--ignore-not-found", check=False)
        kube_cluster.delete_namespace(namespace)


@dataclass
class Traffic:
    """Closed-loop clients: each creates a job for the adain alias, waits for it, rates it, repeats."""

    client_factory: Any
    content_url: str
    style_url: str
    jobs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self, clients: int) -> None:
        for index in range(clients):
            thread = threading.Thread(target=self._run, args=(index,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _run(self, index: int) -> None:
        with self.client_factory() as client:
            while not self.stop.is_set():
                try:
                    job = client.create_job(
                        self.content_url, [self.style_url], model_version="adain"
                    )
                except ApiError as exc:
                    with self.lock:
                        # 503 asks to retry (e.g. token keys not fetched yet): no job exists.
                        (self.retried if exc.status == 503 else self.errors).append(str(exc))
                    time.sleep(0.2)
                    continue
                with self.lock:
                    self.jobs.append(job["job_id"])
                result = client.wait(job["job_id"], timeout_s=120, poll_s=0.1)
                if result.status == "succeeded":
                    _rate(client, result.job_id)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=180)


def _rate(client: GouacheClient, job_id: str) -> None:
    """Rates a job 4/5 once feedback has seen it finish (it learns of it by an event);
    404 (not seen yet) and 503 (retry) are retried, as a client would."""
    for _ in range(20):
        try:
            client.submit_feedback(job_id, 4)
            return
        except ApiError as exc:
            if exc.status not in (404, 503):
                raise
            time.sleep(0.1)


@dataclass
class Timeline:
    """Phase and weight changes of ModelVersions, with the seconds since apply."""

    world: RolloutWorld
    rows: list[dict[str, Any]] = field(default_factory=list)

    def follow(self, name: str, until: set[str], timeout: float) -> dict[str, Any]:
        started = time.monotonic()
        last: tuple[Any, ...] = ()
        while time.monotonic() - started < timeout:
            status = self.world.status(name)
            seen = (status.get("phase"), status.get("weight"), status.get("step"))
            if seen != last:
                last = seen
                self.rows.append(
                    {
                        "version": name,
                        "t_s": round(time.monotonic() - started, 1),
                        "phase": seen[0],
                        "weight": seen[1],
                        "step": seen[2],
                    }
                )
            if status.get("phase") in until:
                return status
            time.sleep(0.25)
        raise TimeoutError(
            f"{name} did not reach {until} in {timeout:.0f} s; status: "
            f"{json.dumps(self.world.status(name))[:2000]}\n"
            f"operator log:\n{self.world.operator.log()[-4000:]}"
        )


def rollout(failure_limit: int) -> dict[str, Any]:
    return {
        "steps": [{"weight": 25, "pause": "8s"}, {"weight": 50, "pause": "8s"}],
        "analysis": {
            "interval": "3s",
            "window": "2m",
            "minSamples": 4,
            "minRatings": 3,
            "failureLimit": failure_limit,
            "thresholds": {
                "maxErrorRate": 0.1,
                "maxLatencyP95Ratio": 3.0,
                "maxRatingDrop": 1.0,
                "maxQualityRegression": 0.05,
            },
        },
        "bake": "8s",
        "progressDeadline": "2m",
        "drain": "20s",
    }


def test_canary_promotion_then_rollback_while_jobs_flow(
    rollout_mesh: Mesh, world: RolloutWorld
) -> None:
    credentials = rollout_mesh.credentials
    assert credentials is not None
    url, key = rollout_mesh.config.public_url, credentials.admin_api_key
    pool = world.pool("e2e", nodes=1, gpus=4)
    with GouacheClient(url, key) as admin:
        content_url = admin.upload(small("chelsea", 64), filename="cat.png")
        style_url = admin.upload(small("hubble_deep_field", 48), filename="s.png", kind="style")
        traffic = Traffic(lambda: GouacheClient(url, key), content_url, style_url)
        traffic.start(CLIENTS)
        timeline = Timeline(world)
        started = time.monotonic()
        try:
            world.apply_version(
                "r2",
                pool,
                resources={"gpuMemoryGiB": 6},
                rollout=rollout(2),
                **_build_spec(HEALTHY),
            )
            promoted = timeline.follow("r2", {"Stable", "RolledBack", "Failed"}, timeout=240)
            promoted_s = time.monotonic() - started
            routes = {r["alias"]: r for r in admin.list_models()["routes"]}
            adain_route = {t["model_version"]: t["weight"] for t in routes["adain"]["targets"]}

            world.apply_version(
                "r3",
                pool,
                resources={"gpuMemoryGiB": 6},
                rollout=rollout(3),
                **_build_spec(FAULTY),
            )
            rolled = timeline.follow("r3", {"RolledBack", "Stable", "Failed"}, timeout=240)
            after = {r["alias"]: r for r in admin.list_models()["routes"]}
            after_route = {t["model_version"]: t["weight"] for t in after["adain"]["targets"]}
        finally:
            traffic.finish()
        outcomes = [admin.wait(job_id, timeout_s=120, poll_s=0.2) for job_id in traffic.jobs]
    total_s = time.monotonic() - started

    by_version = Counter((o.model_version, o.status) for o in outcomes)
    report = {
        "clients": CLIENTS,
        "jobs": len(outcomes),
        "create_errors": traffic.errors,
        "create_retries_503": len(traffic.retried),
        "by_version_and_status": {f"{v} {s}": n for (v, s), n in sorted(by_version.items())},
        "r2_seconds_to_stable": round(promoted_s, 1),
        "total_seconds": round(total_s, 1),
        "timeline": timeline.rows,
        "r2": {k: promoted.get(k) for k in ("phase", "weight", "message", "lastAnalysis")},
        "r3": {k: rolled.get(k) for k in ("phase", "weight", "message")},
        "r2_events": world.events("r2"),
        "r3_events": world.events("r3"),
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))

    assert promoted["phase"] == "Stable", promoted["message"]
    assert adain_route[HEALTHY] == 100
    assert rolled["phase"] == "RolledBack"
    assert "error rate" in rolled["message"]
    assert "> 0.1" in rolled["message"]
    assert after_route == {HEALTHY: 100}
    assert ("RolledBack", rolled["message"]) in world.events("r3")
    # Nothing lost: every job created reached a final state; only the faulty version's failed.
    assert traffic.errors == []
    assert all(o.status in ("succeeded", "failed") for o in outcomes)
    assert {v for (v, s) in by_version if s == "failed"} <= {FAULTY}
    assert by_version[(HEALTHY, "succeeded")] > 0
    assert by_version[(FAULTY, "failed")] > 0
    assert by_version[(STABLE, "succeeded")] > 0
