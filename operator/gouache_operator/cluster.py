"""Reads of the cluster the operator decides on: pools, their capacity, version Deployments."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gouache_operator.domain.placement import GpuClaim, NodeView, PoolCapacity, pool_capacity
from gouache_operator.domain.rollout import DeploymentState
from gouache_operator.domain.spec import InvalidSpec, PoolSpec, parse_pool_spec
from gouache_operator.kube import Json, KubeClient, custom_path
from gouache_operator.resources import (
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
    LABEL_POOL,
    LABEL_VERSION,
    MANAGED_BY,
    gpus_of,
)

_DONE = ("Succeeded", "Failed")


def _quantity(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


def node_view(node: Mapping[str, Any], resource: str) -> NodeView:
    """A Node object as admission sees it."""
    conditions = node.get("status", {}).get("conditions", [])
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    allocatable = node.get("status", {}).get("allocatable", {})
    return NodeView(
        name=node["metadata"]["name"],
        labels=node["metadata"].get("labels", {}),
        ready=ready,
        gpus=_quantity(allocatable.get(resource, 0)),
        unschedulable=bool(node.get("spec", {}).get("unschedulable", False)),
    )


def pod_gpus(pod: Mapping[str, Any], resource: str) -> int:
    """GPUs a pod holds: the larger of its containers' total and any init container's."""
    spec = pod.get("spec", {})

    def held(container: Mapping[str, Any]) -> int:
        resources = container.get("resources", {})
        value = resources.get("limits", {}).get(
            resource, resources.get("requests", {}).get(resource)
        )
        return _quantity(value) if value is not None else 0

    main = sum(held(c) for c in spec.get("containers", ()))
    init = max((held(c) for c in spec.get("initContainers", ())), default=0)
    return max(main, init)


class ClusterView:
    """What the operator reads from the API server to place versions and report pools."""

    def __init__(self, kube: KubeClient) -> None:
        self._kube = kube

    async def pool(self, name: str) -> PoolSpec | InvalidSpec | None:
        """A GPUPool's spec, InvalidSpec when it cannot be used, None when there is none."""
        body = await self._kube.get(custom_path("gpupools", name=name))
        if body is None:
            return None
        try:
            return parse_pool_spec(name, body.get("spec") or {})
        except InvalidSpec as exc:
            return exc

    async def capacity(self, pool: PoolSpec, *, exclude_instance: str = "") -> PoolCapacity:
        """The pool's GPUs: on its Ready nodes, held by version Deployments and other pods.

        A version's Deployment holds replicas x GPUs per replica whether its pods run or
        wait; other pods hold what they request on the pool's nodes. `exclude_instance`
        leaves out one ModelVersion's own Deployment (the one being admitted again).
        """
        nodes = [node_view(n, pool.gpu_resource) for n in await self._kube.list("/api/v1/nodes")]
        members = {
            n.name
            for n in nodes
            if all(n.labels.get(k) == v for k, v in pool.node_selector.items())
        }
        claims: list[GpuClaim] = []
        deployments = await self._kube.list(
            "/apis/apps/v1/deployments",
            labels=f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_POOL}={pool.name}",
        )
        for deployment in deployments:
            meta = deployment["metadata"]
            instance = meta.get("labels", {}).get(LABEL_INSTANCE, "")
            if exclude_instance and f"{meta['namespace']}/{instance}" == exclude_instance:
                continue
            gpus = int(deployment["spec"].get("replicas", 0)) * gpus_of(
                deployment, pool.gpu_resource
            )
            version = meta.get("labels", {}).get(LABEL_VERSION, instance)
            claims.append(
                GpuClaim(
                    owner=f"ModelVersion {meta['namespace']}/{instance} ({version})",
                    gpus=gpus,
                    gpu_memory_gib=gpus * pool.gpu_memory_gib,
                )
            )
        for pod in await self._pods_on(sorted(members)):
            meta = pod["metadata"]
            if meta.get("labels", {}).get(LABEL_MANAGED_BY) == MANAGED_BY:
                continue
            gpus = pod_gpus(pod, pool.gpu_resource)
            if gpus:
                claims.append(
                    GpuClaim(
                        owner=f"pod {meta['namespace']}/{meta['name']}",
                        gpus=gpus,
                        gpu_memory_gib=gpus * pool.gpu_memory_gib,
                    )
                )
        return pool_capacity(pool, nodes, claims)

    async def _pods_on(self, nodes: list[str]) -> list[Json]:
        """Pods bound to these nodes that still hold their resources (one indexed query each)."""
        pods: list[Json] = []
        for node in nodes:
            pods += await self._kube.list(
                "/api/v1/pods",
                fields=f"spec.nodeName={node},"
                + ",".join(f"status.phase!={phase}" for phase in _DONE),
            )
        return pods

    async def deployment(
        self, namespace: str, name: str, selector: Mapping[str, str]
    ) -> DeploymentState | None:
        """A version's Deployment: desired and available replicas, and why pods wait."""
        body = await self._kube.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
        if body is None:
            return None
        available = int(body.get("status", {}).get("availableReplicas") or 0)
        replicas = int(body.get("spec", {}).get("replicas") or 0)
        unschedulable = ""
        if available < replicas:
            labels = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
            for pod in await self._kube.list(f"/api/v1/namespaces/{namespace}/pods", labels=labels):
                for condition in pod.get("status", {}).get("conditions", []):
                    if (
                        condition.get("type") == "PodScheduled"
                        and condition.get("status") == "False"
                        and condition.get("reason") == "Unschedulable"
                    ):
                        unschedulable = (
                            f"pod {pod['metadata']['name']} is unschedulable: "
                            f"{condition.get('message', '')}"
                        )
        return DeploymentState(replicas=replicas, available=available, unschedulable=unschedulable)

    async def versions(self, namespace: str) -> list[Json]:
        """Every ModelVersion in a namespace."""
        return await self._kube.list(custom_path("modelversions", namespace))
