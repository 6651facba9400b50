"""A version's inference Deployment: on its pool, with its GPUs, probes and hardening."""

from __future__ import annotations

from gouache_operator.domain.spec import PoolSpec, Toleration, VersionSpec, Weights
from gouache_operator.resources import (
    InferenceTemplate,
    Owner,
    deployment,
    gpus_of,
    object_name,
    service,
)

OWNER = Owner(name="adain-v2", namespace="models", uid="uid-1")
SPEC = VersionSpec(
    version="adain.lite0-v2",
    model="adain.lite0-v1",
    family="adain",
    alias="adain",
    pool="h100",
    gpu_memory_gib=100,
    weights=Weights(uri="package://gouache.nst/weights/adain.lite0-v1", sha256="a" * 64),
)
POOL = PoolSpec(
    name="h100",
    node_selector={"gouache.dev/pool": "h100"},
    gpu_type="nvidia-h100-80gb",
    gpus_per_node=8,
    gpu_memory_gib=80,
    tolerations=(Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule"),),
)
TEMPLATE = InferenceTemplate(
    image="registry/inference:1", port=50055, env={"GOUACHE_INFERENCE_AUTH_ADDR": "auth:50051"}
)


def test_names_are_dns_labels() -> None:
    assert object_name("adain.lite0-v2") == "inference-adain-lite0-v2"
    long = object_name("a" * 64)
    assert len(long) <= 63
    assert long != object_name("a" * 63 + "b")


def test_deployment_runs_on_the_pool_with_its_gpus() -> None:
    body = deployment(
        OWNER, SPEC, POOL, TEMPLATE, replicas=2, gpus_per_replica=2, progress_deadline_s=600
    )
    pod = body["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert body["spec"]["replicas"] == 2
    assert pod["nodeSelector"] == {"gouache.dev/pool": "h100"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert gpus_of(body, "nvidia.com/gpu") == 2
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["GOUACHE_INFERENCE_MODELS"] == "adain.lite0-v2=adain.lite0-v1"
    assert env["GOUACHE_INFERENCE_AUTH_ADDR"] == "auth:50051"
    assert (env["GOUACHE_INFERENCE_DEVICE"], env["GOUACHE_INFERENCE_PRECISION"]) == ("cuda", "auto")
    assert container["readinessProbe"]["grpc"] == {"port": 50055}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    owner = body["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("ModelVersion", "uid-1", True)


def test_service_selects_the_pods() -> None:
    body = service(OWNER, SPEC, TEMPLATE)
    pods = deployment(
        OWNER, SPEC, POOL, TEMPLATE, replicas=1, gpus_per_replica=1, progress_deadline_s=600
    )
    labels = pods["spec"]["template"]["metadata"]["labels"]
    assert all(labels[k] == v for k, v in body["spec"]["selector"].items())
    assert body["spec"]["ports"][0]["port"] == 50055
