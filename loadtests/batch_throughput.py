"""A catalog as one batch versus the same images as single jobs, on the embedded mesh.

    .venv/bin/python -m loadtests.batch_throughput --items 100

Starts a private mesh on free ports of 127.0.0.1 (adain only), uploads `--items` distinct
content images of `--side` px and one style through REST, then, one after the other:

- batch: one CreateBatch for all items (its round trip: validation of every item, storage
  look-ups, the batch and one job per item written), then GetBatch polled every 0.2 s until
  the batch is final: the wall time from the CreateBatch request to that answer;
- single: the same images again (`no_cache`, so the model runs as it did for the batch)
  as `--items` CreateJob calls from one client, then each job waited for: the wall time
  from the first CreateJob to the last job final.

Both phases run the same inference work; the report gives each phase's submit time (all
creates answered), wall time, items per second, and the ratios batch / single. Prints one
JSON report. Bounded in count; 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from gouache.cli.mesh import UNLIMITED_PLANS, Mesh, MeshConfig, MeshPorts
from gouache.client import GouacheClient
from gouache.imaging.codec import encode

MODEL = "adain.lite0-v1.1"
MAX_ITEMS = 500
FINAL = ("succeeded", "failed", "canceled")


def _phase_report(items: int, submit_s: float, wall_s: float, succeeded: int) -> dict[str, Any]:
    return {
        "items": items,
        "succeeded": succeeded,
        "submit_ms": round(submit_s * 1000, 1),
        "submit_ms_per_item": round(submit_s * 1000 / items, 2),
        "wall_s": round(wall_s, 3),
        "items_per_s": round(items / wall_s, 2) if wall_s > 0 else None,
    }


def measure(
    client: GouacheClient, *, items: int, side: int, timeout_s: float = 900
) -> dict[str, Any]:
    """Uploads the images, runs the batch phase, then the single-job phase; the report."""
    rng = np.random.default_rng(int(time.time_ns() % 2**32))
    contents = [
        client.upload(
            encode((rng.random((side, side, 3)) * 255).astype(np.uint8), "png"),
            filename=f"item-{index}.png",
        )
        for index in range(items)
    ]
    style = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    style_url = client.upload(encode(style, "png"), filename="style.png", kind="style")
    client.token()

    started = time.perf_counter()
    created = client.create_batch(contents, [style_url], model_version=MODEL)
    submitted = time.perf_counter()
    finished = client.wait_batch(created["batch_id"], timeout_s=timeout_s, poll_s=0.2)
    ended = time.perf_counter()
    batch = _phase_report(
        items, submitted - started, ended - started, int(finished["counts"].get("succeeded", 0))
    )
    batch["status"] = finished["status"]

    started = time.perf_counter()
    job_ids = [
        client.create_job(url, [style_url], model_version=MODEL, no_cache=True)["job_id"]
        for url in contents
    ]
    submitted = time.perf_counter()
    succeeded = 0
    deadline = time.monotonic() + timeout_s
    for job_id in job_ids:
        result = client.wait(job_id, timeout_s=max(1.0, deadline - time.monotonic()))
        succeeded += result.status == "succeeded"
    ended = time.perf_counter()
    single = _phase_report(items, submitted - started, ended - started, succeeded)

    def ratio(key: str) -> float | None:
        a, b = batch[key], single[key]
        return round(a / b, 3) if a and b else None

    return {
        "batch": batch,
        "single": single,
        "batch_vs_single_submit": ratio("submit_ms"),
        "batch_vs_single_wall": ratio("wall_s"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--side", type=int, default=128, help="content image side in px")
    args = parser.parse_args()
    if not 1 <= args.items <= MAX_ITEMS:
        parser.error(f"--items must be 1..{MAX_ITEMS}")
    config = MeshConfig(
        state_dir=Path(tempfile.mkdtemp(prefix="gouache-batch-bench-")),
        ports=MeshPorts.ephemeral(),
        models=MODEL,
        rate_limit_plans=UNLIMITED_PLANS,
    )
    mesh = Mesh(config)
    credentials = mesh.start()
    try:
        with GouacheClient(config.public_url, credentials.admin_api_key) as client:
            report = measure(client, items=args.items, side=args.side)
    finally:
        mesh.stop()
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs",
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "command": " ".join(
            [Path(sys.executable).name, "-m", "loadtests.batch_throughput", *sys.argv[1:]]
        ),
        **report,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
