"""The Kubernetes objects of a model version: its inference Deployment and Service."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gouache_operator.domain.spec import PoolSpec, VersionSpec

GROUP = "gouache.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
MANAGED_BY = "gouache-operator"

LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_VERSION = "gouache.dev/model-version"
LABEL_ALIAS = "gouache.dev/alias"
LABEL_POOL = "gouache.dev/pool"
ANNOTATION_GPUS = "gouache.dev/gpus-per-replica"
ANNOTATION_WEIGHTS = "gouache.dev/weights-sha256"


@dataclass(frozen=True)
class Owner:
    """The ModelVersion that owns the objects (garbage-collected with it)."""

    name: str
    namespace: str
    uid: str


@dataclass(frozen=True)
class InferenceTemplate:
    """How inference pods are made: image, port, environment, tolerance of lost nodes."""

    image: str
    port: int
    env: Mapping[str, str]
    service_account: str = ""
    unreachable_toleration_s: int = 30


def object_name(version: str) -> str:
    """A DNS-1123 name for a version's objects, unique per version, at most 63 characters."""
    slug = "".join(c if c.isalnum() else "-" for c in version.lower()).strip("-")
    name = f"inference-{slug}"
    if len(name) <= 63 and slug:
        return name
    suffix = hashlib.sha256(version.encode()).hexdigest()[:8]
    return f"{name[: 63 - 9].rstrip('-')}-{suffix}"


def selector_labels(owner: Owner) -> dict[str, str]:
    """The labels that select a version's pods (stable for the Deployment's lifetime)."""
    return {LABEL_NAME: "gouache-inference", LABEL_INSTANCE: owner.name}


def labels(owner: Owner, spec: VersionSpec) -> dict[str, str]:
    """Every label of a version's objects."""
    return {
        **selector_labels(owner),
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_VERSION: spec.version,
        LABEL_ALIAS: spec.alias,
        LABEL_POOL: spec.pool,
    }


def owner_reference(owner: Owner) -> dict[str, Any]:
    """The owner reference that makes the ModelVersion the controller of an object."""
    return {
        "apiVersion": API_VERSION,
        "kind": "ModelVersion",
        "name": owner.name,
        "uid": owner.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _probe(port: int, *, period: int, failures: int) -> dict[str, Any]:
    return {"grpc": {"port": port}, "periodSeconds": period, "failureThreshold": failures}


def deployment(
    owner: Owner,
    spec: VersionSpec,
    pool: PoolSpec,
    template: InferenceTemplate,
    *,
    replicas: int,
    gpus_per_replica: int,
    progress_deadline_s: float,
) -> dict[str, Any]:
    """The inference Deployment of a version: its pool's nodes, GPUs, probes, hardening.

    Pods report ready only when the inference server is SERVING, which it is once every
    model it loads has warmed up; they take no jobs before the operator routes to them.
    """
    env = {
        "GOUACHE_INFERENCE_HOST": "0.0.0.0",
        "GOUACHE_INFERENCE_PORT": str(template.port),
        "GOUACHE_INFERENCE_MODELS": spec.served_as(),
        "GOUACHE_INFERENCE_RUNTIME": spec.runtime,
        "GOUACHE_INFERENCE_PRECISION": spec.precision,
        "GOUACHE_INFERENCE_DEVICE": "cuda",
        **template.env,
    }
    tolerations = [t.manifest() for t in pool.tolerations]
    for key in ("node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready"):
        tolerations.append(
            {
                "key": key,
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": template.unreachable_toleration_s,
            }
        )
    gpu_limit = {pool.gpu_resource: str(gpus_per_replica)}
    pod_labels = labels(owner, spec)
    pod_spec: dict[str, Any] = {
        "nodeSelector": dict(pool.node_selector),
        "tolerations": tolerations,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "fsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationGracePeriodSeconds": 30,
        "containers": [
            {
                "name": "inference",
                "image": spec.image or template.image,
                "ports": [{"name": "grpc", "containerPort": template.port, "protocol": "TCP"}],
                "env": [{"name": key, "value": value} for key, value in sorted(env.items())],
                "resources": {
                    "requests": {"cpu": spec.cpu, "memory": spec.memory, **gpu_limit},
                    "limits": {"memory": spec.memory, **gpu_limit},
                },
                "startupProbe": _probe(template.port, period=5, failures=120),
                "readinessProbe": _probe(template.port, period=5, failures=3),
                "livenessProbe": _probe(template.port, period=10, failures=6),
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
            }
        ],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }
    if template.service_account:
        pod_spec["serviceAccountName"] = template.service_account
    annotations = {ANNOTATION_GPUS: str(gpus_per_replica)}
    if spec.weights is not None:
        annotations[ANNOTATION_WEIGHTS] = spec.weights.sha256
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": object_name(spec.version),
            "namespace": owner.namespace,
            "labels": pod_labels,
            "annotations": annotations,
            "ownerReferences": [owner_reference(owner)],
        },
        "spec": {
            "replicas": replicas,
            "progressDeadlineSeconds": max(60, int(progress_deadline_s)),
            "selector": {"matchLabels": selector_labels(owner)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {"labels": pod_labels, "annotations": annotations},
                "spec": pod_spec,
            },
        },
    }


def service(owner: Owner, spec: VersionSpec, template: InferenceTemplate) -> dict[str, Any]:
    """The ClusterIP Service tiling reaches the version's inference through."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": object_name(spec.version),
            "namespace": owner.namespace,
            "labels": labels(owner, spec),
            "ownerReferences": [owner_reference(owner)],
        },
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(owner),
            "ports": [
                {
                    "name": "grpc",
                    "port": template.port,
                    "targetPort": "grpc",
                    "protocol": "TCP",
                    "appProtocol": "kubernetes.io/h2c",
                }
            ],
        },
    }


def gpus_of(deployment_body: Mapping[str, Any], resource: str) -> int:
    """GPUs one replica of a Deployment holds (its container limits of `resource`)."""
    spec = deployment_body.get("spec", {}).get("template", {}).get("spec", {})
    total = 0
    for container in spec.get("containers", ()):
        limits = container.get("resources", {}).get("limits", {})
        value = limits.get(resource)
        if value is not None:
            total += int(str(value))
    return total
