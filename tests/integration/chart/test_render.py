"""charts/gouache: helm lint, the values matrix, the schema and what every object must hold."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from gouache.secretbox import SecretBox
from tests.integration.chart.conftest import CHART, MATRIX, Rendered, helm, render

GRPC_PORTS = {
    "auth": 50051,
    "storage": 50052,
    "jobs": 50053,
    "tiling": 50054,
    "inference": 50055,
    "feedback": 50056,
}
WORKLOADS = ("Deployment", "StatefulSet", "Job")
DEFAULT = [CHART / "ci" / "default-values.yaml"]


def pod_specs(rendered: Rendered) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"]["spec"])
        for kind in WORKLOADS
        for doc in rendered.of_kind(kind)
    ]


@pytest.mark.parametrize("entry", sorted(MATRIX))
def test_lint_strict(entry: str) -> None:
    args = ["lint", "--strict", str(CHART)]
    for path in MATRIX[entry]:
        args += ["-f", str(path)]
    result = helm(*args)
    assert "0 chart(s) failed" in result.stdout


def test_matrix_covers_the_profiles() -> None:
    assert {"default-values", "external-values", "gpu-pools-values", "secure-values", "dev"} <= set(
        MATRIX
    )


@pytest.mark.parametrize("entry", sorted(MATRIX))
def test_every_pod_is_hardened(rendered_matrix: dict[str, Rendered], entry: str) -> None:
    for where, spec in pod_specs(rendered_matrix[entry]):
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, where
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, where
        for container in spec["containers"] + spec.get("initContainers", []):
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, (where, container["name"])
            assert context["allowPrivilegeEscalation"] is False, (where, container["name"])
            assert context["capabilities"] == {"drop": ["ALL"]}, (where, container["name"])
            assert context["runAsNonRoot"] is True, (where, container["name"])
            assert container["resources"]["limits"], where
        if where.startswith(("Deployment/", "Job/")):
            assert pod["runAsUser"] == 10001, where


@pytest.mark.parametrize("entry", sorted(MATRIX))
def test_services_probe_grpc_or_healthz(rendered_matrix: dict[str, Rendered], entry: str) -> None:
    rendered = rendered_matrix[entry]
    mtls = entry == "secure-values"
    for component, port in GRPC_PORTS.items():
        deployment = rendered.get("Deployment", f"gouache-{component}")
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            if mtls:
                assert container[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}
            else:
                assert container[probe]["grpc"] == {"port": port}
        service = rendered.get("Service", f"gouache-{component}")
        assert service["spec"]["clusterIP"] == "None", "gRPC upstreams are headless"
        ports = {p["name"]: p["port"] for p in service["spec"]["ports"]}
        assert ports["grpc"] == port
        assert ports["metrics"] == 9090


def test_settings_reach_each_service(rendered_matrix: dict[str, Rendered]) -> None:
    rendered = rendered_matrix["default-values"]
    config = {
        c: rendered.get("ConfigMap", f"gouache-{c}")["data"] for c in (*GRPC_PORTS, "operator")
    }
    for component in GRPC_PORTS:
        prefix = f"GOUACHE_{component.upper()}_"
        assert config[component][f"{prefix}HOST"] == "0.0.0.0"
        assert config[component][f"{prefix}PORT"] == str(GRPC_PORTS[component])
        assert config[component][f"{prefix}METRICS_PORT"] == "9090"
        assert config[component][f"{prefix}AUTH_ADDR"] == "gouache-auth:50051"
    for component in ("jobs", "tiling", "feedback"):
        prefix = f"GOUACHE_{component.upper()}_"
        assert config[component][f"{prefix}NATS_URL"] == "nats://gouache-nats:4222"
        assert config[component][f"{prefix}STREAM_REPLICAS"] == "3"
    plans = {
        "free": {"per_minute": 60, "burst": 20},
        "pro": {"per_minute": 600, "burst": 100},
        "enterprise": {"per_minute": 6000, "burst": 1000},
    }
    for component in ("auth", "storage", "jobs", "feedback"):
        prefix = f"GOUACHE_{component.upper()}_"
        assert json.loads(config[component][f"{prefix}RATE_LIMIT_PLANS"]) == plans
        assert config[component][f"{prefix}RATE_LIMIT_NATS_URL"] == "nats://gouache-nats:4222"
        assert config[component][f"{prefix}RATE_LIMIT_REPLICAS"] == "3"
    storage = config["storage"]
    assert storage["GOUACHE_STORAGE_BLOB_BACKEND"] == "s3"
    assert storage["GOUACHE_STORAGE_S3_ENDPOINT"] == "s3.eu-west-1.amazonaws.com:443"
    assert storage["GOUACHE_STORAGE_S3_SECURE"] == "true"
    assert storage["GOUACHE_STORAGE_S3_CREATE_BUCKET"] == "false"
    assert storage["GOUACHE_STORAGE_NSFW_FILTER"] == "true"
    assert storage["GOUACHE_STORAGE_NSFW_THRESHOLD"] == "0.8"
    assert config["inference"]["GOUACHE_INFERENCE_PRECISION"] == "auto"
    assert (
        config["auth"]["GOUACHE_AUTH_DATABASE_URL"]
        == "postgresql+asyncpg://db.example.internal:5432/gouache"
    )
    assert config["operator"]["GOUACHE_OPERATOR_NAMESPACES"] == "gouache"
    assert config["operator"]["GOUACHE_OPERATOR_JOBS_ADDR"] == "gouache-jobs:50053"


def test_traces_go_to_the_collector_through_the_network_policy(
    rendered_matrix: dict[str, Rendered],
) -> None:
    rendered = rendered_matrix["secure-values"]
    for component in GRPC_PORTS:
        config = rendered.get("ConfigMap", f"gouache-{component}")["data"]
        assert config["OTEL_TRACES_EXPORTER"] == "otlp"
        assert config["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.observability:4317"
        assert config["OTEL_SERVICE_NAME"] == f"gouache-{component}"
        assert config["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
        egress = rendered.get("NetworkPolicy", f"gouache-{component}")["spec"]["egress"]
        assert {
            "to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}],
            "ports": [{"port": 4317, "protocol": "TCP"}],
        } in egress
    untraced = rendered_matrix["dev"].get("ConfigMap", "gouache-jobs")["data"]
    assert not any(key.startswith("OTEL_") for key in untraced)


def test_mtls_files_reach_services_and_operator(rendered_matrix: dict[str, Rendered]) -> None:
    rendered = rendered_matrix["secure-values"]
    for component in (*GRPC_PORTS, "operator"):
        config = rendered.get("ConfigMap", f"gouache-{component}")["data"]
        prefix = f"GOUACHE_{component.upper()}_"
        assert config[f"{prefix}TLS_CERT_FILE"] == "/etc/gouache/mtls/tls.crt"
        assert config[f"{prefix}TLS_KEY_FILE"] == "/etc/gouache/mtls/tls.key"
        assert config[f"{prefix}TLS_CA_FILE"] == "/etc/gouache/mtls/ca.crt"
        volumes = rendered.get("Deployment", f"gouache-{component}")["spec"]["template"]["spec"][
            "volumes"
        ]
        assert {
            "name": "mtls",
            "secret": {"secretName": "gouache-mesh-mtls", "defaultMode": 288},
        } in volumes


def test_dev_profile_uses_one_nats_server_and_bundled_stores(
    rendered_matrix: dict[str, Rendered],
) -> None:
    rendered = rendered_matrix["dev"]
    assert rendered.get("StatefulSet", "gouache-nats")["spec"]["replicas"] == 1
    assert "cluster {" not in rendered.get("ConfigMap", "gouache-nats")["data"]["nats.conf"]
    assert rendered.get("ConfigMap", "gouache-jobs")["data"]["GOUACHE_JOBS_STREAM_REPLICAS"] == "1"
    assert rendered.get("StatefulSet", "gouache-postgresql")
    assert rendered.get("StatefulSet", "gouache-minio")
    storage = rendered.get("ConfigMap", "gouache-storage")["data"]
    assert storage["GOUACHE_STORAGE_S3_ENDPOINT"] == "gouache-minio:9000"
    assert storage["GOUACHE_STORAGE_S3_SECURE"] == "false"
    assert storage["GOUACHE_STORAGE_S3_CREATE_BUCKET"] == "true"
    assert not rendered.of_kind("HorizontalPodAutoscaler")


def test_nats_is_a_three_node_jetstream_cluster(rendered_matrix: dict[str, Rendered]) -> None:
    rendered = rendered_matrix["default-values"]
    nats = rendered.get("StatefulSet", "gouache-nats")
    assert nats["spec"]["replicas"] == 3
    assert nats["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    conf = rendered.get("ConfigMap", "gouache-nats")["data"]["nats.conf"]
    for index in range(3):
        assert f"nats://gouache-nats-{index}.gouache-nats.gouache.svc:6222" in conf
    assert "jetstream {" in conf
    assert rendered.get("Service", "gouache-nats")["spec"]["clusterIP"] == "None"


def test_no_secret_value_in_a_configmap(rendered_matrix: dict[str, Rendered]) -> None:
    for name, rendered in rendered_matrix.items():
        for config in rendered.of_kind("ConfigMap"):
            for key in config.get("data", {}):
                assert not any(
                    word in key for word in ("PASSWORD", "PASSPHRASE", "API_KEY", "SECRET_KEY")
                ), (name, config["metadata"]["name"], key)
                if key.endswith("DATABASE_URL"):
                    assert "@" not in config["data"][key], "credentials come from PGUSER/PGPASSWORD"


def test_external_secrets_are_referenced_not_generated(
    rendered_matrix: dict[str, Rendered],
) -> None:
    rendered = rendered_matrix["external-values"]
    generated = {s["metadata"]["name"] for s in rendered.of_kind("Secret")}
    assert generated == {"gouache-admin"}
    assert not rendered.of_kind("Job"), "keys are pre-made: no bootstrap Job"
    env = rendered.get("Deployment", "gouache-storage")["spec"]["template"]["spec"]["containers"][
        0
    ]["env"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in env if "valueFrom" in e}
    assert refs["PGPASSWORD"] == {"name": "rds-gouache", "key": "pass"}
    assert refs["GOUACHE_STORAGE_S3_ACCESS_KEY"] == {
        "name": "s3-gouache",
        "key": "AWS_ACCESS_KEY_ID",
    }
    assert refs["GOUACHE_STORAGE_URL_SIGNING_KEY"] == {"name": "url-signing", "key": "value"}
    assert refs["GOUACHE_STORAGE_SERVICE_API_KEY"] == {
        "name": "gouache-service-keys-premade",
        "key": "storage",
    }
    jobs = rendered.get("Deployment", "gouache-jobs")["spec"]["template"]["spec"]["containers"][0]
    jobs_refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in jobs["env"] if "valueFrom" in e}
    assert jobs_refs["GOUACHE_JOBS_SECRETS_KEY"] == {"name": "jobs-webhook-keys", "key": "keys"}
    roles = {r["metadata"]["namespace"] for r in rendered.of_kind("Role")}
    assert roles == {"gouache-models", "gouache-canary"}


def test_the_generated_jobs_secrets_key_is_an_aes_256_key(
    rendered_matrix: dict[str, Rendered],
) -> None:
    rendered = rendered_matrix["default-values"]
    secret = rendered.get("Secret", "gouache-jobs-secrets")
    value = base64.b64decode(secret["data"]["secrets-key"]).decode()
    box = SecretBox.from_setting(value, variable="GOUACHE_JOBS_SECRETS_KEY")
    assert box.open(box.seal("webhook-secret-16", "wh_1"), "wh_1") == "webhook-secret-16"


def test_two_gpu_pools_become_gpupool_resources(rendered_matrix: dict[str, Rendered]) -> None:
    rendered = rendered_matrix["gpu-pools-values"]
    pools = {p["metadata"]["name"]: p["spec"] for p in rendered.of_kind("GPUPool")}
    assert set(pools) == {"h100", "l4"}
    assert pools["h100"]["gpusPerNode"] == 8
    assert pools["h100"]["nodes"] == {"min": 1, "max": 4}
    assert pools["l4"]["gpuMemoryGiB"] == 24
    assert rendered.get("ModelVersion", "adain-v1-r2")["spec"]["pool"] == "h100"


def test_operator_rbac_is_least_privilege(rendered_matrix: dict[str, Rendered]) -> None:
    rendered = rendered_matrix["default-values"]
    cluster_rules = rendered.get("ClusterRole", "gouache-operator-gouache")["rules"]
    verbs = {
        (r["apiGroups"][0], res): set(r["verbs"]) for r in cluster_rules for res in r["resources"]
    }
    assert verbs[("gouache.dev", "gpupools")] == {"get", "list"}
    assert verbs[("", "pods")] == {"list"}
    assert verbs[("apps", "deployments")] == {"list"}
    namespaced = rendered.get("Role", "gouache-operator")["rules"]
    verbs = {
        (r["apiGroups"][0], res): set(r["verbs"]) for r in namespaced for res in r["resources"]
    }
    assert verbs[("gouache.dev", "modelversions")] == {"get", "list", "watch", "patch"}
    assert verbs[("apps", "deployments")] == {"get", "create", "patch"}
    everything = [v for rule in cluster_rules + namespaced for v in rule["verbs"]]
    assert "*" not in everything
    assert "delete" not in everything
    assert not any("secrets" in rule["resources"] for rule in cluster_rules + namespaced)
    operator = rendered.get("Deployment", "gouache-operator")["spec"]
    assert operator["replicas"] == 1
    assert operator["strategy"]["type"] == "Recreate"


def test_bootstrap_may_touch_only_its_two_secrets(rendered_matrix: dict[str, Rendered]) -> None:
    rendered = rendered_matrix["default-values"]
    (rule,) = rendered.get("Role", "gouache-bootstrap")["rules"]
    assert rule["resources"] == ["secrets"]
    assert set(rule["verbs"]) == {"get", "patch"}
    assert set(rule["resourceNames"]) == {"gouache-service-keys", "gouache-admin"}


def test_network_policies_deny_by_default(rendered_matrix: dict[str, Rendered]) -> None:
    rendered = rendered_matrix["default-values"]
    deny = rendered.get("NetworkPolicy", "gouache-default-deny")["spec"]
    assert deny["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny
    edge = rendered.get("NetworkPolicy", "gouache-edge")["spec"]["ingress"][0]
    assert "from" not in edge, "the edge is the only component open to any source"
    for component in GRPC_PORTS:
        for rule in rendered.get("NetworkPolicy", f"gouache-{component}")["spec"]["ingress"]:
            assert rule.get("from"), f"{component} accepts traffic only from named peers"


def test_edge_renders_with_the_shared_renderer(rendered_matrix: dict[str, Rendered]) -> None:
    spec = rendered_matrix["secure-values"].get("Deployment", "gouache-edge")["spec"]["template"][
        "spec"
    ]
    (init,) = spec["initContainers"]
    assert init["command"][:4] == ["python", "-m", "gouache.edge", "render"]
    assert "--tls-cert" in init["command"]
    assert "--upstream-ca" in init["command"]
    (envoy,) = spec["containers"]
    assert envoy["image"] == "envoyproxy/envoy:v1.40.0"
    assert envoy["command"][:3] == ["envoy", "-c", "/etc/envoy/envoy.json"]


def test_checksum_annotation_follows_the_config() -> None:
    before = render(DEFAULT).get("Deployment", "gouache-jobs")
    after = render(DEFAULT, sets=("config.logLevel=DEBUG",)).get("Deployment", "gouache-jobs")
    annotation = "checksum/config"
    assert (
        before["spec"]["template"]["metadata"]["annotations"][annotation]
        != after["spec"]["template"]["metadata"]["annotations"][annotation]
    )


def test_labels_follow_the_recommended_set(rendered_matrix: dict[str, Rendered]) -> None:
    for doc in rendered_matrix["default-values"].documents:
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == "gouache", doc["metadata"]["name"]
        assert labels["helm.sh/chart"] == "gouache-0.1.0"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (("unknown=1",), "additional properties 'unknown' not allowed"),
        (("auth.replicas=-1",), "/auth/replicas': minimum: got -1, want 0"),
        (("nats.replicas=0",), "/nats/replicas': minimum: got 0, want 1"),
        (("inference.device=tpu",), "/inference/device'"),
        (("inference.precision=int8",), "/inference/precision': value must be one of 'auto'"),
        (("postgresql.external.sslmode=maybe",), "/postgresql/external/sslmode'"),
        (("edge.tls.enabled=true",), "edge.tls.enabled needs edge.tls.secretName"),
        (("mtls.enabled=true",), "mtls.enabled needs mtls.secretName"),
        (("storage.contentSafety.threshold=1.5",), "/storage/contentSafety/threshold'"),
    ],
)
def test_bad_values_are_refused_with_a_readable_error(sets: tuple[str, ...], message: str) -> None:
    args = ["template", "gouache", str(CHART), "-f", str(DEFAULT[0])]
    for item in sets:
        args += ["--set", item]
    result = helm(*args, check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_content_safety_settings_reach_storage(tmp_path: Path) -> None:
    # A values file: `--set` passes 0.5 as a string, which the schema refuses (--set-json works).
    values = tmp_path / "safety.yaml"
    values.write_text("storage:\n  contentSafety: {enabled: false, threshold: 0.5}\n")
    storage = render([*DEFAULT, values]).get("ConfigMap", "gouache-storage")["data"]
    assert storage["GOUACHE_STORAGE_NSFW_FILTER"] == "false"
    assert storage["GOUACHE_STORAGE_NSFW_THRESHOLD"] == "0.5"


def test_production_profile_requires_external_stores() -> None:
    result = helm("template", "gouache", str(CHART), check=False)
    assert result.returncode != 0
    assert "/postgresql/external" in result.stderr
    no_s3 = helm(
        "template",
        "gouache",
        str(CHART),
        "--set",
        "postgresql.external.host=db,postgresql.external.existingSecret=db",
        check=False,
    )
    assert no_s3.returncode != 0
    assert "/objectStore/s3" in no_s3.stderr


def test_values_schema_is_valid_json() -> None:
    schema = json.loads(Path(CHART / "values.schema.json").read_text())
    assert schema["additionalProperties"] is False
    for block in ("auth", "edge", "nats", "postgresql", "objectStore", "monitoring", "mtls"):
        assert schema["properties"][block]["additionalProperties"] is False, block
