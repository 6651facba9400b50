"""REST latency through Envoy on the embedded mesh: POST /v1/jobs and GET /v1/jobs/{id}.

    .venv/bin/python loadtests/rest_api.py --requests 100

Starts a private mesh on free ports (or uses --url and --api-key of a running one),
sends requests one after another from one client, and prints median and p95 in ms.
Bounded in count; targets 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from gouache.cli.mesh import UNLIMITED_PLANS, Mesh, MeshConfig, MeshPorts
from gouache.client import GouacheClient
from gouache.imaging.codec import encode


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def measure(client: GouacheClient, requests: int) -> dict[str, dict[str, float]]:
    pixels = (np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)
    content_url = client.upload(encode(pixels, "png"), filename="c.png")
    style_url = client.upload(encode(pixels[::-1], "png"), filename="s.png", kind="style")
    client.token()
    create: list[float] = []
    get: list[float] = []
    job_ids = []
    for _ in range(requests):
        started = time.perf_counter()
        job = client.create_job(
            content_url,
            [style_url],
            model_version="gatys-fast",
            idempotency_key=uuid.uuid4().hex,
            no_cache=True,  # the create path of a job that runs, not a result-cache hit
        )
        create.append((time.perf_counter() - started) * 1000)
        job_ids.append(job["job_id"])
        started = time.perf_counter()
        client.get_job(job["job_id"])
        get.append((time.perf_counter() - started) * 1000)
    for job_id in job_ids:
        client.cancel_job(job_id)
    return {
        name: {"median_ms": statistics.median(values), "p95_ms": _percentile(values, 95)}
        for name, values in (("POST /v1/jobs", create), ("GET /v1/jobs/{id}", get))
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--url")
    parser.add_argument("--api-key")
    args = parser.parse_args()
    mesh = None
    if args.url and args.api_key:
        url, key = args.url, args.api_key
    else:
        config = MeshConfig(
            state_dir=Path(tempfile.mkdtemp(prefix="gouache-bench-")),
            ports=MeshPorts.ephemeral(),
            models="gatys.lite0-fast",
            rate_limit_plans=UNLIMITED_PLANS,
        )
        mesh = Mesh(config)
        credentials = mesh.start()
        url, key = config.public_url, credentials.admin_api_key
    try:
        with GouacheClient(url, key) as client:
            results = measure(client, args.requests)
    finally:
        if mesh is not None:
            mesh.stop()
    print(
        json.dumps(
            {
                "machine": f"{platform.node()} {platform.processor() or platform.machine()}",
                "requests": args.requests,
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
