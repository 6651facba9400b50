"""The operator as a separate process, for tests that crash and restart it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.fixtures.kube import KubeCluster
from tests.fixtures.processes import stop_process

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "operator" / "crds"
ADAIN_MANIFEST_SHA256 = "11f39f8efc9dbf22bf3a2daab396486a6ffb9d7951bdba8a6fab9e3bdced9a74"


@dataclass
class OperatorProcess:
    """`python -m gouache_operator` with its log; kill() is a crash, start() a restart."""

    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        self.starts += 1
        log = self.log_path.open("ab")
        log.write(f"--- start {self.starts}\n".encode())
        log.flush()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gouache_operator"],
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
        log.close()

    def kill(self) -> None:
        """SIGKILL, as a crashed or evicted operator pod."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        stop_process(self.process, timeout=15)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class RolloutWorld:
    """A test's namespace, GPU pools and running operator, with helpers to drive them."""

    cluster: KubeCluster
    namespace: str
    operator: OperatorProcess
    pools: list[str] = field(default_factory=list)

    def pool(self, name: str, *, nodes: int, gpus: int, gpu_memory_gib: int = 80) -> str:
        """A GPUPool named `name`-<namespace> with `nodes` kwok nodes of `gpus` GPUs each."""
        pool = f"{name}-{self.namespace}"[:63]
        for index in range(nodes):
            self.cluster.create_gpu_node(
                f"{pool}-n{index}"[:63], pool=pool, gpus=gpus, gpu_memory_gib=gpu_memory_gib
            )
        self.cluster.apply_yaml(
            yaml.safe_dump(
                {
                    "apiVersion": "gouache.dev/v1alpha1",
                    "kind": "GPUPool",
                    "metadata": {"name": pool},
                    "spec": {
                        "nodeSelector": {"gouache.dev/pool": pool},
                        "tolerations": [
                            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
                        ],
                        "gpuType": "nvidia-h100",
                        "gpusPerNode": gpus,
                        "gpuMemoryGiB": gpu_memory_gib,
                    },
                }
            )
        )
        self.pools.append(pool)
        return pool

    def apply_version(self, name: str, pool: str, **spec: Any) -> None:
        """Applies a ModelVersion of the adain build (spec keys override the defaults)."""
        body: dict[str, Any] = {
            "version": f"adain.lite0-v1-{name}",
            "model": "adain.lite0-v1",
            "family": "adain",
            "alias": "adain",
            "weights": {
                "uri": "package://gouache.nst/weights/adain.lite0-v1",
                "sha256": ADAIN_MANIFEST_SHA256,
            },
            "pool": pool,
            "resources": {"gpuMemoryGiB": 40},
            "rollout": {
                "steps": [{"weight": 20, "pause": "2s"}, {"weight": 50, "pause": "2s"}],
                "analysis": {
                    "interval": "1s",
                    "window": "1m",
                    "minSamples": 5,
                    "failureLimit": 2,
                    "thresholds": {"maxErrorRate": 0.1, "maxLatencyP95Ratio": 2.0},
                },
                "bake": "3s",
                "progressDeadline": "2m",
                "drain": "2s",
            },
        }
        body.update(spec)
        manifest = {
            "apiVersion": "gouache.dev/v1alpha1",
            "kind": "ModelVersion",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": body,
        }
        self.cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))

    def version(self, name: str) -> dict[str, Any]:
        body = self.cluster.api_get(
            f"/apis/gouache.dev/v1alpha1/namespaces/{self.namespace}/modelversions/{name}"
        )
        assert body is not None, f"ModelVersion {name} is gone"
        return body

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.version(name).get("status") or {})

    def wait_phase(self, name: str, phase: str, timeout: float = 60.0) -> dict[str, Any]:
        """Waits for a phase; on timeout the error shows the status and the operator's log."""
        try:
            return self.cluster.wait_for(
                lambda: (s := self.status(name)).get("phase") == phase and s,
                timeout,
                f"ModelVersion {name} to reach {phase}",
            )
        except TimeoutError as exc:
            raise TimeoutError(
                f"{exc}; status: {json.dumps(self.status(name), indent=1)[:3000]}\n"
                f"operator log tail:\n{self.operator.log()[-4000:]}"
            ) from None

    def wait(self, check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
        try:
            return self.cluster.wait_for(check, timeout, what)
        except TimeoutError as exc:
            raise TimeoutError(
                f"{exc}\noperator log tail:\n{self.operator.log()[-4000:]}"
            ) from None

    def events(self, name: str) -> list[tuple[str, str]]:
        """(reason, message) of the operator's Events on a ModelVersion, oldest first."""
        listed = self.cluster.api_get(
            f"/api/v1/namespaces/{self.namespace}/events?fieldSelector=involvedObject.name%3D{name}"
        )
        items = sorted(
            (listed or {}).get("items", []),
            key=lambda e: (e.get("lastTimestamp") or "", int(e["metadata"]["resourceVersion"])),
        )
        return [
            (e["reason"], e["message"])
            for e in items
            if e.get("source", {}).get("component") == "gouache-operator"
        ]

    def delete_version(self, name: str, timeout: float = 120.0) -> None:
        """Deletes a ModelVersion and waits until the operator has released it."""
        self.cluster.kubectl("delete", "mv", name, "-n", self.namespace, "--wait=false")
        self.wait(
            lambda: (
                self.cluster.api_get(
                    f"/apis/gouache.dev/v1alpha1/namespaces/{self.namespace}/modelversions/{name}"
                )
                is None
            ),
            f"ModelVersion {name} to be released and deleted",
            timeout,
        )

    def deployment(self, version: str) -> dict[str, Any] | None:
        slug = "".join(c if c.isalnum() else "-" for c in version)
        return self.cluster.api_get(
            f"/apis/apps/v1/namespaces/{self.namespace}/deployments/inference-{slug}"
        )
