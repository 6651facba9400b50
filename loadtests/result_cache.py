"""Server time of a result-cache hit: CreateJob answered from the cache on the embedded mesh.

    .venv/bin/python -m loadtests.result_cache --hits 200 --misses 50

Starts a private mesh on free ports of 127.0.0.1 (adain only), uploads one content image of
`--side` px and one style through REST, runs one job to the end (inference paints it), then
sends `--misses` requests with no_cache (each one's CreateJob: validation, routing, storage
lookups, the job and its JobCreated event written), waits for their jobs to end so their
inference does not overlap the next phase, then sends `--hits` identical requests that the
cache answers, one after another from one client. For each phase it reads jobs' own
histogram of CreateJob (`gouache_grpc_request_duration_seconds{service="jobs",
method="CreateJob"}`, on jobs' metrics port) before and after: the mean server time and the
share of calls under 50 ms (its `le="0.05"` bucket); per request, Envoy's
`x-envoy-upstream-service-time` (jobs' answer time as the edge saw it) and the client's
round trip: median, p95, max. Prints one JSON report. Bounded in count; 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from gouache.cli.mesh import UNLIMITED_PLANS, Mesh, MeshConfig, MeshPorts
from gouache.client import GouacheClient
from gouache.imaging.codec import encode

MODEL = "adain.lite0-v1.1"
MAX_REQUESTS = 5000
METRIC = "gouache_grpc_request_duration_seconds"
UNDER_S = "0.05"


@dataclass(frozen=True)
class Histogram:
    """jobs' CreateJob histogram at one moment: count, sum, and calls within 50 ms."""

    count: float
    total_s: float
    under_50ms: float

    def minus(self, earlier: Histogram) -> Histogram:
        return Histogram(
            self.count - earlier.count,
            self.total_s - earlier.total_s,
            self.under_50ms - earlier.under_50ms,
        )


def read_histogram(metrics_url: str) -> Histogram:
    """CreateJob's server-side histogram as jobs exports it."""
    text = httpx.get(metrics_url, timeout=10).text
    count = total = under = 0.0
    for family in text_string_to_metric_families(text):
        if family.name != METRIC:
            continue
        for sample in family.samples:
            labels = sample.labels
            if labels.get("service") != "jobs" or labels.get("method") != "CreateJob":
                continue
            if sample.name == f"{METRIC}_count":
                count = sample.value
            elif sample.name == f"{METRIC}_sum":
                total = sample.value
            elif sample.name == f"{METRIC}_bucket" and float(labels["le"]) == float(UNDER_S):
                under = sample.value
    return Histogram(count, total, under)


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def _summary(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "p95": None, "max": None}
    return {
        "median": round(statistics.median(values), 2),
        "p95": round(_percentile(values, 95), 2),
        "max": round(max(values), 2),
    }


def _phase(
    client: GouacheClient,
    http: httpx.Client,
    metrics_url: str,
    request: dict[str, Any],
    count: int,
    *,
    no_cache: bool,
) -> tuple[dict[str, Any], list[str]]:
    """Sends count identical POST /v1/jobs one after another; the figures and the job ids.

    Envoy's `x-envoy-upstream-service-time` header is the time jobs took to answer each
    one as Envoy saw it (jobs' handler plus the loopback hop), a per-request server time.
    """
    before = read_histogram(metrics_url)
    client_ms: list[float] = []
    upstream_ms: list[float] = []
    job_ids: list[str] = []
    cached = 0
    body = {**request, "no_cache": no_cache}
    for _ in range(count):
        headers = {"authorization": f"Bearer {client.token()}"}
        started = time.perf_counter()
        response = http.post("/v1/jobs", json=body, headers=headers)
        client_ms.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
        upstream = response.headers.get("x-envoy-upstream-service-time")
        if upstream is not None:
            upstream_ms.append(float(upstream))
        job = response.json()
        job_ids.append(str(job["job_id"]))
        cached += bool(job.get("cached"))
    server = read_histogram(metrics_url).minus(before)
    figures = {
        "requests": count,
        "answered_from_cache": cached,
        "server_calls": int(server.count),
        "server_mean_ms": round(1000 * server.total_s / server.count, 2) if server.count else None,
        "server_share_under_50ms": round(server.under_50ms / server.count, 4)
        if server.count
        else None,
        "envoy_upstream_ms": _summary(upstream_ms),
        "client_ms": _summary(client_ms),
    }
    return figures, job_ids


def _wait_all(client: GouacheClient, job_ids: list[str], timeout_s: float) -> None:
    """Waits until every job is final, so their inference does not overlap what follows."""
    deadline = time.monotonic() + timeout_s
    for job_id in job_ids:
        while client.get_job(job_id).get("status") not in ("succeeded", "failed", "canceled"):
            if time.monotonic() > deadline:
                raise SystemExit(f"job {job_id} not final within {timeout_s:.0f} s")
            time.sleep(0.1)


def measure(
    client: GouacheClient,
    base_url: str,
    metrics_url: str,
    *,
    hits: int,
    misses: int,
    side: int,
) -> dict[str, Any]:
    """Runs one job to the end, then the miss and hit phases; the report as a dict."""
    rng = np.random.default_rng(int(time.time_ns() % 2**32))
    content = (rng.random((side, side, 3)) * 255).astype(np.uint8)
    style = (np.random.default_rng(0).random((256, 256, 3)) * 255).astype(np.uint8)
    content_url = client.upload(encode(content, "png"), filename="content.png")
    style_url = client.upload(encode(style, "png"), filename="style.png", kind="style")
    client.token()
    request: dict[str, Any] = {
        "content_url": content_url,
        "style_urls": [style_url],
        "model_version": MODEL,
    }
    first = client.create_job(**request)
    result = client.wait(first["job_id"], timeout_s=300, poll_s=0.05)
    if result.status != "succeeded":
        raise SystemExit(f"the first job did not succeed: {result.raw}")
    with httpx.Client(base_url=base_url, timeout=60) as http:
        miss, miss_jobs = _phase(client, http, metrics_url, request, misses, no_cache=True)
        _wait_all(client, miss_jobs, timeout_s=60 + 10 * misses)
        hit, _ = _phase(client, http, metrics_url, request, hits, no_cache=False)
    return {
        "first_job": {"job_id": result.job_id, "latency_ms": result.latency_ms},
        "miss_no_cache": miss,
        "hit": hit,
        "hit_vs_miss_server_mean": _ratio(hit["server_mean_ms"], miss["server_mean_ms"]),
        "hit_vs_miss_upstream_median": _ratio(
            hit["envoy_upstream_ms"]["median"], miss["envoy_upstream_ms"]["median"]
        ),
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hits", type=int, default=200)
    parser.add_argument("--misses", type=int, default=50)
    parser.add_argument("--side", type=int, default=512, help="content image side in px")
    args = parser.parse_args()
    if not (1 <= args.hits <= MAX_REQUESTS and 0 <= args.misses <= MAX_REQUESTS):
        parser.error(f"--hits must be 1..{MAX_REQUESTS} and --misses 0..{MAX_REQUESTS}")
    config = MeshConfig(
        state_dir=Path(tempfile.mkdtemp(prefix="gouache-cache-bench-")),
        ports=MeshPorts.ephemeral(),
        models=MODEL,
        rate_limit_plans=UNLIMITED_PLANS,
    )
    mesh = Mesh(config)
    credentials = mesh.start()
    metrics_url = f"http://127.0.0.1:{config.ports.metrics['jobs']}/metrics"
    try:
        with GouacheClient(config.public_url, credentials.admin_api_key) as client:
            report = measure(
                client,
                config.public_url,
                metrics_url,
                hits=args.hits,
                misses=args.misses,
                side=args.side,
            )
    finally:
        mesh.stop()
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs",
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "command": " ".join(
            [Path(sys.executable).name, "-m", "loadtests.result_cache", *sys.argv[1:]]
        ),
        **report,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
