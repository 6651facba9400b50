"""The chart's monitoring objects: rendered by helm, checked by promtool, accepted by the API server.

ServiceMonitors, the PrometheusRule and the dashboard ConfigMap exist only behind their
switches; every PromQL expression (rules and dashboard) parses, names only metrics the
code exports, and the alerts fire on synthetic series (`promtool test rules`); the
objects pass `kubectl apply --dry-run=server` against the prometheus-operator CRDs.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

import gouache.bus.depth
import gouache.runtime.metrics
import services.inference.metrics
import services.jobs.metrics
from services.inference.gpu import gpu_families
from tests.fixtures.kube import KubeCluster, KubectlError

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "charts" / "gouache"
TOOLS = ROOT / ".tools"
HELM = TOOLS / "bin" / "helm"
PROMTOOL = TOOLS / "bin" / "promtool"
PROMETHEUS_CRDS = TOOLS / "crds" / "prometheus-operator"
RUNBOOKS = ROOT / "docs" / "runbooks.md"
DASHBOARD = CHART / "dashboards" / "gouache.json"
VALUES = CHART / "ci" / "default-values.yaml"
NAMESPACE = "gouache-monitoring"
RELEASE = "mon"
COMPONENTS = ("auth", "storage", "jobs", "tiling", "inference", "feedback", "edge")
SWITCHES = (
    "monitoring.serviceMonitor.enabled=true,"
    "monitoring.prometheusRule.enabled=true,"
    "monitoring.grafanaDashboard.enabled=true"
)
TIMEOUT_S = 60
# The modules whose metrics register in the shared registry on import.
METRIC_MODULES = (
    gouache.bus.depth,
    gouache.runtime.metrics,
    services.inference.metrics,
    services.jobs.metrics,
)

needs_helm = pytest.mark.skipif(
    not HELM.exists(), reason="helm not built: bash scripts/ensure-tools.sh helm"
)
needs_promtool = pytest.mark.skipif(
    not PROMTOOL.exists(), reason="promtool not built: bash scripts/ensure-tools.sh promtool"
)


def render(*sets: str, namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    """The chart's documents for the ci default values and `sets`."""
    command = [str(HELM), "template", RELEASE, str(CHART), "--namespace", namespace]
    command += ["-f", str(VALUES)]
    for item in sets:
        # --set reads 1.5 as a string; --set-json keeps numbers numbers.
        command += [
            "--set-json" if item.startswith("monitoring.prometheusRule.thresholds.") else "--set",
            item,
        ]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=TIMEOUT_S)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def of_kind(documents: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in documents if doc.get("kind") == kind]


def dashboard_configmaps(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        doc
        for doc in of_kind(documents, "ConfigMap")
        if "grafana_dashboard" in doc["metadata"].get("labels", {})
    ]


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    if not HELM.exists():
        pytest.skip("helm not built: bash scripts/ensure-tools.sh helm")
    return render(SWITCHES)


@pytest.fixture(scope="module")
def rule_groups(rendered: list[dict[str, Any]]) -> list[dict[str, Any]]:
    [rule] = of_kind(rendered, "PrometheusRule")
    groups: list[dict[str, Any]] = rule["spec"]["groups"]
    return groups


def alerts(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PROMTOOL), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=TIMEOUT_S,
        cwd=cwd,
    )


# -- rendering ---------------------------------------------------------------------------


@needs_helm
def test_monitoring_objects_are_off_by_default() -> None:
    documents = render()
    assert of_kind(documents, "ServiceMonitor") == []
    assert of_kind(documents, "PrometheusRule") == []
    assert dashboard_configmaps(documents) == []


def test_each_service_monitor_selects_one_service_with_a_metrics_port(
    rendered: list[dict[str, Any]],
) -> None:
    monitors = {
        m["metadata"]["labels"]["app.kubernetes.io/component"]: m
        for m in of_kind(rendered, "ServiceMonitor")
    }
    assert sorted(monitors) == sorted(COMPONENTS)
    services = of_kind(rendered, "Service")
    for component, monitor in monitors.items():
        wanted = monitor["spec"]["selector"]["matchLabels"]
        [endpoint] = monitor["spec"]["endpoints"]
        scraped = [
            service["metadata"]["name"]
            for service in services
            if wanted.items() <= service["metadata"].get("labels", {}).items()
            and any(port.get("name") == endpoint["port"] for port in service["spec"]["ports"])
        ]
        assert len(scraped) == 1, f"{component}: {scraped}"
        assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}


def test_the_dashboard_ships_as_a_sidecar_configmap(rendered: list[dict[str, Any]]) -> None:
    [configmap] = dashboard_configmaps(rendered)
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(configmap["data"]["gouache.json"]) == json.loads(DASHBOARD.read_text())


# -- the rules and the dashboard's queries -----------------------------------------------


def exported_metric_names() -> set[str]:
    """Every series name the services export: the shared registry and the GPU collector."""
    families = [*REGISTRY.collect(), *gpu_families()]
    names: set[str] = set()
    for family in families:
        if not family.name.startswith("gouache_"):
            continue
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names.update(f"{family.name}{suffix}" for suffix in ("_bucket", "_count", "_sum"))
        else:
            names.add(family.name)
    return names


def dashboard_queries() -> Iterator[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def as_promql(grafana_expr: str) -> str:
    """A dashboard query with Grafana's variables replaced by values Prometheus accepts."""
    return grafana_expr.replace("$__rate_interval", "5m").replace("$namespace", NAMESPACE)


def test_rules_and_dashboard_name_only_exported_metrics(rule_groups: list[dict[str, Any]]) -> None:
    exported = exported_metric_names()
    assert "gouache_queue_depth" in exported
    assert "gouache_gpu_memory_used_bytes" in exported
    recorded = {
        rule["record"] for group in rule_groups for rule in group["rules"] if "record" in rule
    }
    expressions = [rule["expr"] for group in rule_groups for rule in group["rules"]]
    expressions += [expr for _title, expr in dashboard_queries()]
    used = {name for expr in expressions for name in re.findall(r"\bgouache_[a-z0-9_]+", expr)}
    assert used, "no metric found in the expressions"
    assert used - exported == set()
    used_recorded = {
        name for expr in expressions for name in re.findall(r"\bgouache:[a-z0-9_:]+", expr)
    }
    assert used_recorded <= recorded


@needs_promtool
def test_rules_and_dashboard_queries_pass_promtool(
    rule_groups: list[dict[str, Any]], tmp_path: Path
) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule_groups}))
    checked = promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    panels = [
        {"record": f"dashboard:panel_{n}", "expr": as_promql(expr)}
        for n, (_title, expr) in enumerate(dashboard_queries())
    ]
    assert len(panels) >= 15
    (tmp_path / "dashboard.yaml").write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": panels}]})
    )
    checked = promtool("check", "rules", "dashboard.yaml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_alert_says_how_bad_what_and_where_its_runbook_is(
    rule_groups: list[dict[str, Any]],
) -> None:
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", heading.strip().lower()).replace(" ", "-")
        for heading in re.findall(r"^#{2,3} (.+)$", RUNBOOKS.read_text(), flags=re.MULTILINE)
    }
    found = alerts(rule_groups)
    assert {a["alert"] for a in found} >= {
        "GouacheJobSuccessRateLow",
        "GouacheJobLatencyP95High",
        "GouacheQueueDepthHigh",
        "GouacheQueueGrowing",
        "GouacheModelVersionErrorRateHigh",
        "GouacheModelVersionJobFailuresHigh",
        "GouacheTargetDown",
        "GouacheServiceAbsent",
    }
    for alert in found:
        assert alert["labels"]["severity"] in ("warning", "critical"), alert["alert"]
        annotations = alert["annotations"]
        assert annotations["summary"], alert["alert"]
        assert annotations["description"], alert["alert"]
        url, _, anchor = annotations["runbook_url"].partition("#")
        assert url.endswith("docs/runbooks.md"), url
        assert anchor == alert["alert"].lower(), anchor
        assert anchor in anchors, f"docs/runbooks.md has no section {anchor}"
        assert f'namespace="{NAMESPACE}"' in alert["expr"], alert["alert"]


@needs_helm
def test_thresholds_and_the_runbook_base_are_values() -> None:
    documents = render(
        "monitoring.prometheusRule.enabled=true",
        "monitoring.prometheusRule.thresholds.queueDepth=500",
        "monitoring.prometheusRule.thresholds.jobLatencyP95Seconds=1.5",
        "monitoring.prometheusRule.runbookBaseUrl=https://wiki.example/runbooks",
        "monitoring.prometheusRule.alertLabels.team=imaging",
    )
    [rule] = of_kind(documents, "PrometheusRule")
    by_name = {a["alert"]: a for a in alerts(rule["spec"]["groups"])}
    assert by_name["GouacheQueueDepthHigh"]["expr"].strip().endswith("> 500")
    assert "> 1.5" in by_name["GouacheJobLatencyP95High"]["expr"]
    for alert in by_name.values():
        assert alert["annotations"]["runbook_url"].startswith("https://wiki.example/runbooks#")
        assert alert["labels"]["team"] == "imaging"


@needs_helm
@pytest.mark.parametrize(
    "setting",
    [
        "monitoring.prometheusRule.thresholds.jobSuccessRatio=1.5",
        "monitoring.prometheusRule.thresholds.queueDepth=0",
        "monitoring.prometheusRule.thresholds.unknownThreshold=1",
        "monitoring.serviceMonitor.scrapeTimeout=soon",
    ],
)
def test_the_schema_refuses_bad_monitoring_values(setting: str) -> None:
    command = [str(HELM), "template", RELEASE, str(CHART), "-f", str(VALUES), "--set", setting]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=TIMEOUT_S)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr, result.stderr


# -- alerts on synthetic series ----------------------------------------------------------

SERIES_NS = f'namespace="{NAMESPACE}"'
JOBS_JOB = f"{RELEASE}-gouache-jobs"


def _series(name: str, values: str, **labels: str) -> dict[str, str]:
    rendered_labels = ",".join([SERIES_NS, *(f'{k}="{v}"' for k, v in labels.items())])
    return {"series": f"{name}{{{rendered_labels}}}", "values": values}


def _alert(name: str, at: str, *expected: dict[str, str]) -> dict[str, Any]:
    return {
        "eval_time": at,
        "alertname": name,
        "exp_alerts": [{"exp_labels": labels} for labels in expected],
    }


@needs_promtool
def test_alerts_fire_on_synthetic_series_and_stay_quiet_when_healthy(
    rule_groups: list[dict[str, Any]], tmp_path: Path
) -> None:
    # Annotations are left out here (promtool compares them verbatim); `check rules`
    # above parses their templates. Expressions, thresholds, `for` and labels are tested.
    stripped = [
        {
            **group,
            "rules": [{k: v for k, v in r.items() if k != "annotations"} for r in group["rules"]],
        }
        for group in rule_groups
    ]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": stripped}))
    finished = "gouache_jobs_finished_total"
    bad, good = "adain.lite0-v1", "feedforward.lite0-v1"
    up_series = [
        _series("up", "1x60", job=f"{RELEASE}-gouache-{c}", pod=f"{c}-0")
        for c in ("auth", "storage", "tiling", "inference", "feedback")
    ] + [_series("up", "1x60", job=f"{RELEASE}-gouache-edge-admin", pod="edge-0")]
    failing = {
        "interval": "1m",
        "input_series": [
            # 54 successes and 6 failures a minute: 10% fail, the objective allows 1%.
            _series(finished, "0+54x60", model_version=bad, outcome="succeeded"),
            _series(finished, "0+6x60", model_version=bad, outcome="failed"),
            # p95 latency: every job takes 5-7.5 s, above the 3 s objective.
            _series("gouache_job_duration_seconds_bucket", "0x60", model_version=bad, le="5"),
            _series("gouache_job_duration_seconds_bucket", "0+54x60", model_version=bad, le="7.5"),
            _series("gouache_job_duration_seconds_bucket", "0+54x60", model_version=bad, le="+Inf"),
            # gatys is left out of the latency objective by default.
            _series(
                "gouache_job_duration_seconds_bucket",
                "0+9x60",
                model_version="gatys.lite0-v1",
                le="+Inf",
            ),
            # The tiling consumer's backlog grows by 5 a minute, reported by two replicas.
            _series(
                "gouache_queue_depth", "0+5x60", stream="GOUACHE_JOBS", consumer="tiling", pod="t-1"
            ),
            _series(
                "gouache_queue_depth", "0+5x60", stream="GOUACHE_JOBS", consumer="tiling", pod="t-2"
            ),
            # Inference: 1 call in 5 of the bad version fails with INTERNAL.
            _series("gouache_inference_requests_total", "0+50x60", model_version=bad, code="OK"),
            _series(
                "gouache_inference_requests_total", "0+10x60", model_version=bad, code="INTERNAL"
            ),
            _series(
                "gouache_inference_errors_total", "0+10x60", model_version=bad, code="INTERNAL"
            ),
            # Client errors do not count against a version.
            _series("gouache_inference_requests_total", "0+50x60", model_version=good, code="OK"),
            _series(
                "gouache_inference_requests_total",
                "0+20x60",
                model_version=good,
                code="INVALID_ARGUMENT",
            ),
            _series(
                "gouache_inference_errors_total",
                "0+20x60",
                model_version=good,
                code="INVALID_ARGUMENT",
            ),
            # The only jobs replica stops answering after 10 minutes.
            _series("up", "1x10 0x50", job=JOBS_JOB, pod="jobs-0"),
            *up_series,
        ],
        "alert_rule_test": [
            _alert(
                "GouacheJobSuccessRateLow", "40m", {"severity": "critical", "namespace": NAMESPACE}
            ),
            _alert(
                "GouacheJobLatencyP95High",
                "40m",
                {"severity": "warning", "namespace": NAMESPACE, "model_version": bad},
            ),
            _alert(
                "GouacheQueueDepthHigh",
                "40m",
                {
                    "severity": "warning",
                    "namespace": NAMESPACE,
                    "stream": "GOUACHE_JOBS",
                    "consumer": "tiling",
                },
            ),
            _alert(
                "GouacheQueueGrowing",
                "40m",
                {
                    "severity": "warning",
                    "namespace": NAMESPACE,
                    "stream": "GOUACHE_JOBS",
                    "consumer": "tiling",
                },
            ),
            _alert(
                "GouacheModelVersionErrorRateHigh",
                "40m",
                {"severity": "critical", "namespace": NAMESPACE, "model_version": bad},
            ),
            _alert(
                "GouacheModelVersionJobFailuresHigh",
                "40m",
                {"severity": "warning", "namespace": NAMESPACE, "model_version": bad},
            ),
            _alert(
                "GouacheTargetDown",
                "40m",
                {"severity": "warning", "namespace": NAMESPACE, "job": JOBS_JOB, "pod": "jobs-0"},
            ),
            _alert(
                "GouacheServiceAbsent",
                "40m",
                {"severity": "critical", "namespace": NAMESPACE, "job": JOBS_JOB},
            ),
            # Before the `for` durations nothing fires.
            _alert("GouacheJobSuccessRateLow", "3m"),
            _alert("GouacheServiceAbsent", "12m"),
        ],
    }
    healthy = {
        "interval": "1m",
        "input_series": [
            _series(finished, "0+100x60", model_version=good, outcome="succeeded"),
            _series("gouache_job_duration_seconds_bucket", "0+100x60", model_version=good, le="1"),
            _series(
                "gouache_job_duration_seconds_bucket", "0+100x60", model_version=good, le="+Inf"
            ),
            _series("gouache_queue_depth", "3x60", stream="GOUACHE_JOBS", consumer="tiling"),
            _series("gouache_inference_requests_total", "0+100x60", model_version=good, code="OK"),
            _series("up", "1x60", job=JOBS_JOB, pod="jobs-0"),
            *up_series,
        ],
        "alert_rule_test": [
            _alert(name, "40m")
            for name in (
                "GouacheJobSuccessRateLow",
                "GouacheJobLatencyP95High",
                "GouacheQueueDepthHigh",
                "GouacheQueueGrowing",
                "GouacheModelVersionErrorRateHigh",
                "GouacheModelVersionJobFailuresHigh",
                "GouacheTargetDown",
                "GouacheServiceAbsent",
            )
        ],
    }
    (tmp_path / "tests.yaml").write_text(
        yaml.safe_dump(
            {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": [failing, healthy]}
        )
    )
    result = promtool("test", "rules", "tests.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


# -- against the API server --------------------------------------------------------------


@pytest.fixture(scope="module")
def monitoring_crds(kube_cluster: KubeCluster, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The ServiceMonitor and PrometheusRule CRDs, and the project's own, installed."""
    if not PROMETHEUS_CRDS.exists():
        pytest.skip("no prometheus-operator CRDs: bash scripts/ensure-tools.sh prometheus-crds")
    wanted = tmp_path_factory.mktemp("prometheus-crds")
    for kind in ("servicemonitors", "prometheusrules"):
        name = f"monitoring.coreos.com_{kind}.yaml"
        shutil.copyfile(PROMETHEUS_CRDS / name, wanted / name)
    kube_cluster.install_crds(wanted)
    kube_cluster.install_crds(CHART / "crds")


@pytest.fixture(scope="module")
def monitoring_namespace(kube_cluster: KubeCluster, monitoring_crds: None) -> Iterator[str]:
    yield kube_cluster.namespace(NAMESPACE)
    kube_cluster.delete_namespace(NAMESPACE)


def dry_run(kube_cluster: KubeCluster, documents: list[dict[str, Any]]) -> str:
    manifest = yaml.safe_dump_all(documents)
    result = kube_cluster.kubectl(
        "apply", "--dry-run=server", "-n", NAMESPACE, "-f", "-", input=manifest
    )
    return result.stdout


@pytest.mark.k8s
@needs_helm
def test_the_api_server_accepts_the_monitoring_objects(
    kube_cluster: KubeCluster, monitoring_namespace: str, rendered: list[dict[str, Any]]
) -> None:
    objects = [
        *of_kind(rendered, "ServiceMonitor"),
        *of_kind(rendered, "PrometheusRule"),
        *dashboard_configmaps(rendered),
    ]
    assert len(objects) == len(COMPONENTS) + 2
    output = dry_run(kube_cluster, objects)
    for component in COMPONENTS:
        assert (
            f"servicemonitor.monitoring.coreos.com/{RELEASE}-gouache-{component} created" in output
        )
    assert f"prometheusrule.monitoring.coreos.com/{RELEASE}-gouache created" in output


@pytest.mark.k8s
@needs_helm
def test_the_api_server_refuses_a_monitor_its_crd_does_not_allow(
    kube_cluster: KubeCluster, monitoring_namespace: str, rendered: list[dict[str, Any]]
) -> None:
    monitor = of_kind(rendered, "ServiceMonitor")[0]
    broken = json.loads(json.dumps(monitor))
    broken["spec"]["endpoints"][0]["interval"] = "every thirty seconds"
    with pytest.raises(KubectlError, match="interval"):
        dry_run(kube_cluster, [broken])
