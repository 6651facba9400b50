"""The simulated GPU cluster the operator tests run on: real scheduling, GC and node failure.

Each step is timed with kube_cluster.timed(); the timings are printed after the run.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.kube import (
    GPU_RESOURCE,
    GPU_TOLERATION,
    K8S_VERSION,
    NODE_MONITOR_GRACE_S,
    POOL_LABEL,
    KubeCluster,
)

pytestmark = pytest.mark.k8s

# The scheduler and the Deployment controller settle within seconds; this leaves room
# for a busy CI machine without hiding a stuck cluster behind minutes of waiting.
SETTLE_TIMEOUT_S = 60.0
GC_TIMEOUT_S = 60.0
# The node lifecycle controller needs the grace period plus a monitor period or two.
NOT_READY_TIMEOUT_S = NODE_MONITOR_GRACE_S + 20.0


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for condition in obj.get("status", {}).get("conditions", []):
        if condition["type"] == kind:
            return dict(condition)
    return None


def _deployment(namespace: str, *, pool: str, replicas: int, gpus: int) -> str:
    """A GPU Deployment for a pool, as JSON (which kubectl apply takes as YAML)."""
    labels = {"app": "worker"}
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "worker", "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": {POOL_LABEL: pool},
                    "tolerations": [GPU_TOLERATION],
                    "containers": [
                        {
                            "name": "worker",
                            "image": "registry.invalid/gouache/worker:test",
                            "resources": {"limits": {GPU_RESOURCE: str(gpus)}},
                        }
                    ],
                },
            },
        },
    }
    return json.dumps(manifest)


def test_apiserver_and_kubectl_report_the_pinned_version(kube_cluster: KubeCluster) -> None:
    version = kube_cluster.api_get("/version")
    assert version is not None
    assert version["gitVersion"] == K8S_VERSION
    reported = json.loads(kube_cluster.kubectl("version", "--output=json").stdout)
    assert reported["clientVersion"]["gitVersion"] == K8S_VERSION
    assert reported["serverVersion"]["gitVersion"] == K8S_VERSION


def test_gpu_capacity_decides_placement(kube_cluster: KubeCluster, kube_namespace: str) -> None:
    with kube_cluster.timed("test: two 4-GPU nodes of pool a Ready"):
        nodes = [
            kube_cluster.create_gpu_node(f"{kube_namespace}-a-{i}", pool="a", gpus=4)
            for i in range(2)
        ]
    for node in nodes:
        assert node["status"]["allocatable"][GPU_RESOURCE] == "4"
        assert node["metadata"]["labels"]["nvidia.com/gpu.memory"] == str(80 * 1024)
        assert {"key": GPU_RESOURCE, "value": "present", "effect": "NoSchedule"} in node["spec"][
            "taints"
        ]

    with kube_cluster.timed("test: 3 x 3-GPU replicas: 2 Ready, 1 Unschedulable"):
        kube_cluster.apply_yaml(_deployment(kube_namespace, pool="a", replicas=3, gpus=3))

        def settled() -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
            reply = kube_cluster.api_get(
                f"/api/v1/namespaces/{kube_namespace}/pods?labelSelector=app%3Dworker"
            )
            pods = (reply or {}).get("items", [])
            ready = [
                pod
                for pod in pods
                if pod["status"].get("phase") == "Running"
                and (_condition(pod, "Ready") or {}).get("status") == "True"
            ]
            unschedulable = [
                pod
                for pod in pods
                if pod["status"].get("phase") == "Pending"
                and (_condition(pod, "PodScheduled") or {}).get("reason") == "Unschedulable"
            ]
            if len(pods) == 3 and len(ready) == 2 and len(unschedulable) == 1:
                return ready, unschedulable
            return None

        ready, unschedulable = kube_cluster.wait_for(
            settled, SETTLE_TIMEOUT_S, "2 pods Ready and 1 Unschedulable"
        )
    assert {pod["spec"]["nodeName"] for pod in ready} == {
        node["metadata"]["name"] for node in nodes
    }
    scheduled = _condition(unschedulable[0], "PodScheduled")
    assert scheduled is not None
    assert scheduled["status"] == "False"
    assert f"Insufficient {GPU_RESOURCE}" in scheduled["message"]

    with kube_cluster.timed("test: Deployment reports 2 available"):
        deployment = kube_cluster.wait_for(
            lambda: _available(kube_cluster, kube_namespace, "worker", 2),
            SETTLE_TIMEOUT_S,
            "the Deployment to report 2 available replicas",
        )
    assert deployment["status"]["replicas"] == 3
    assert deployment["status"].get("unavailableReplicas") == 1


def _available(
    cluster: KubeCluster, namespace: str, name: str, count: int
) -> dict[str, Any] | None:
    deployment = cluster.api_get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
    if deployment is not None and deployment["status"].get("availableReplicas") == count:
        return deployment
    return None


def test_dependents_of_a_deleted_owner_are_garbage_collected(
    kube_cluster: KubeCluster, kube_namespace: str
) -> None:
    def config_map(name: str, owner_uid: str | None = None) -> str:
        metadata: dict[str, Any] = {"name": name, "namespace": kube_namespace}
        if owner_uid is not None:
            metadata["ownerReferences"] = [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner_uid}
            ]
        return json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata})

    kube_cluster.apply_yaml(config_map("owner"))
    owner = kube_cluster.api_get(f"/api/v1/namespaces/{kube_namespace}/configmaps/owner")
    assert owner is not None
    uid = owner["metadata"]["uid"]
    kube_cluster.apply_yaml(config_map("made-before", uid))
    assert kube_cluster.api_get(f"/api/v1/namespaces/{kube_namespace}/configmaps/made-before")
    kube_cluster.kubectl("delete", "configmap", "owner", f"--namespace={kube_namespace}")
    kube_cluster.apply_yaml(config_map("made-after", uid))

    with kube_cluster.timed("test: dependents of a deleted owner collected"):
        for name in ("made-before", "made-after"):
            path = f"/api/v1/namespaces/{kube_namespace}/configmaps/{name}"
            kube_cluster.wait_for(
                partial(_gone, kube_cluster, path),
                GC_TIMEOUT_S,
                f"the garbage collector to delete {name}",
            )


def _gone(cluster: KubeCluster, path: str) -> bool:
    return cluster.api_get(path) is None


def test_a_node_whose_heartbeat_stops_goes_not_ready(
    kube_cluster: KubeCluster, kube_namespace: str
) -> None:
    name = f"{kube_namespace}-b-0"
    kube_cluster.create_gpu_node(name, pool="b", gpus=8)
    kube_cluster.set_node_unmanaged(name)
    with kube_cluster.timed("test: unmanaged node NotReady"):
        kube_cluster.wait_for(
            lambda: kube_cluster.node_ready(name) != "True",
            NOT_READY_TIMEOUT_S,
            f"node {name} to go NotReady",
        )
    node = kube_cluster.api_get(f"/api/v1/nodes/{name}")
    assert node is not None
    ready = _condition(node, "Ready")
    assert ready is not None
    assert ready["status"] == "Unknown"
    assert ready["reason"] == "NodeStatusUnknown"
    with kube_cluster.timed("test: unreachable taint on the NotReady node"):
        kube_cluster.wait_for(
            lambda: _tainted_unreachable(kube_cluster, name),
            NOT_READY_TIMEOUT_S,
            f"node {name} to be tainted unreachable",
        )


def _tainted_unreachable(cluster: KubeCluster, name: str) -> bool:
    node = cluster.api_get(f"/api/v1/nodes/{name}") or {}
    return any(
        taint["key"] == "node.kubernetes.io/unreachable"
        for taint in node.get("spec", {}).get("taints", [])
    )


WIDGET_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.fixture.gouache.dev
spec:
  group: fixture.gouache.dev
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                gpus: {type: integer, minimum: 1, maximum: 8}
"""


def test_installed_crds_are_established_and_validate(
    kube_cluster: KubeCluster, kube_namespace: str, tmp_path: Path
) -> None:
    (tmp_path / "widgets.yaml").write_text(WIDGET_CRD)
    with kube_cluster.timed("test: a CRD installed and Established"):
        assert kube_cluster.install_crds(tmp_path) == ["widgets.fixture.gouache.dev"]

    def widget(gpus: int) -> str:
        return json.dumps(
            {
                "apiVersion": "fixture.gouache.dev/v1",
                "kind": "Widget",
                "metadata": {"name": f"w{gpus}", "namespace": kube_namespace},
                "spec": {"gpus": gpus},
            }
        )

    kube_cluster.apply_yaml(widget(4))
    assert kube_cluster.api_get(
        f"/apis/fixture.gouache.dev/v1/namespaces/{kube_namespace}/widgets/w4"
    )
    refused = kube_cluster.kubectl("apply", "-f", "-", input=widget(9), check=False)
    assert refused.returncode != 0
    assert "spec.gpus" in refused.stderr
