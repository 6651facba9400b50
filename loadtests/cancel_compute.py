"""Inference's CPU after a running gatys job is canceled: does the optimisation stop?

    .venv/bin/python -m loadtests.cancel_compute --trials 3 --window 10

Starts a private mesh on free ports of 127.0.0.1 (one gatys version), uploads a `--side` px
content and a style through REST, and per trial: creates a job that paints the content as
one tile (no_cache, its own seed), waits until the inference process has spent
`--busy-cpu` CPU-seconds on it (the optimisation runs), cancels the job through REST, then
samples the inference process's CPU time (user + system, /proc via psutil) every 0.1 s for
`--window` seconds. Reported per trial and as medians: inference's CPU rate while idle
(the second before the job) and while optimising (the second before the cancel), the
CPU-seconds it used in each second after the cancel, `busy_until_s` (the end of the last
0.2 s sample after the cancel in which it used more than half its optimising rate), the
job's final status, and inference's `gouache_inference_canceled_total` for the version.
Between trials it waits (bounded) for inference to go idle. On a shared machine the
optimising rate is inference's share of the cores, so compare the seconds after the
cancel with it, not with a full core. Prints one JSON report. Bounded in count and time;
127.0.0.1 only.
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
from prometheus_client.parser import text_string_to_metric_families

from gouache.cli.mesh import UNLIMITED_PLANS, Mesh, MeshConfig, MeshPorts
from gouache.client import GouacheClient
from gouache.imaging.codec import encode

MODEL = "gatys.lite0-v1"
MAX_TRIALS = 20
MAX_WINDOW_S = 120.0
SAMPLE_S = 0.1
# Inference counts as idle below a tenth of a core over a second (measured idle: ~0.01).
IDLE_CORES = 0.1
CANCELED_METRIC = "gouache_inference_canceled_total"


def _image(side: int, seed: int) -> bytes:
    """A smooth random colour field, PNG: content for the optimisation to paint."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (8, 8, 3)).astype(np.float32)
    cells = np.kron(coarse, np.ones((side // 8 + 1, side // 8 + 1, 1), np.float32))
    return encode(cells[:side, :side].astype(np.uint8), "png")


def canceled_total(metrics_url: str, model_version: str) -> float | None:
    """Inference's count of canceled calls for the version; None when it exports none."""
    text = httpx.get(metrics_url, timeout=10).text
    for family in text_string_to_metric_families(text):
        if family.name != CANCELED_METRIC.removesuffix("_total"):
            continue
        for sample in family.samples:
            if sample.name == CANCELED_METRIC and sample.labels["model_version"] == model_version:
                return sample.value
        return 0.0
    return None


def _cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _rate(process: psutil.Process, seconds: float) -> float:
    """CPU-seconds per second the process uses over the next `seconds`."""
    before = _cpu_s(process)
    time.sleep(seconds)
    return (_cpu_s(process) - before) / seconds


def wait_idle(process: psutil.Process, *, timeout_s: float, quiet_s: float = 1.0) -> float:
    """Waits until the process used under IDLE_CORES of a core over `quiet_s`; seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        before = _cpu_s(process)
        time.sleep(quiet_s)
        if _cpu_s(process) - before < IDLE_CORES * quiet_s:
            return round(time.monotonic() - started, 2)
    raise TimeoutError(f"inference stayed busy for {timeout_s} s")


def _trial(
    client: GouacheClient,
    process: psutil.Process,
    content_url: str,
    style_url: str,
    *,
    model: str,
    side: int,
    seed: int,
    busy_cpu_s: float,
    window_s: float,
) -> dict[str, Any]:
    idle_rate = _rate(process, 1.0)
    job = client.create_job(
        content_url,
        [style_url],
        model_version=model,
        params={"tile_size": side, "overlap": 0, "seed": seed},
        no_cache=True,
    )
    created_cpu = _cpu_s(process)
    deadline = time.monotonic() + 300
    while _cpu_s(process) - created_cpu < busy_cpu_s:
        if time.monotonic() > deadline:
            raise TimeoutError("inference never started computing the job")
        time.sleep(SAMPLE_S)
    status_before = client.get_job(job["job_id"])["status"]
    busy_rate = _rate(process, 1.0)
    canceled = client.cancel_job(job["job_id"])
    start, start_cpu = time.monotonic(), _cpu_s(process)
    samples: list[tuple[float, float]] = [(0.0, 0.0)]
    while samples[-1][0] < window_s:
        time.sleep(SAMPLE_S)
        samples.append((time.monotonic() - start, _cpu_s(process) - start_cpu))
    per_second = []
    for second in range(int(window_s)):
        inside = [cpu for t, cpu in samples if second <= t <= second + 1]
        per_second.append(round(inside[-1] - inside[0], 3) if len(inside) > 1 else None)
    busy_until = 0.0
    for (t0, c0), (t1, c1) in zip(samples[::2], samples[2::2], strict=False):
        if (c1 - c0) / (t1 - t0) > busy_rate / 2:
            busy_until = t1
    return {
        "job_id": job["job_id"],
        "idle_cpu_s_per_s": round(idle_rate, 3),
        "optimising_cpu_s_per_s": round(busy_rate, 3),
        "status_when_canceled": status_before,
        "cancel_answer": canceled["status"],
        "final_status": client.get_job(job["job_id"])["status"],
        "cpu_s_per_second_after_cancel": per_second,
        "cpu_s_in_window": round(samples[-1][1], 3),
        "busy_until_s": round(busy_until, 2),
    }


def measure(
    client: GouacheClient,
    inference_pid: int,
    metrics_url: str,
    *,
    model: str = MODEL,
    trials: int = 3,
    side: int = 512,
    busy_cpu_s: float = 2.0,
    window_s: float = 10.0,
) -> dict[str, Any]:
    """Runs the trials against a running mesh; the report without machine details."""
    process = psutil.Process(inference_pid)
    content_url = client.upload(_image(side, 1), filename="content.png")
    style_url = client.upload(_image(64, 2), filename="style.png", kind="style")
    counted_before = canceled_total(metrics_url, model)
    results = []
    for trial in range(trials):
        idle_wait = wait_idle(process, timeout_s=600)
        result = _trial(
            client,
            process,
            content_url,
            style_url,
            model=model,
            side=side,
            seed=trial,
            busy_cpu_s=busy_cpu_s,
            window_s=window_s,
        )
        results.append({"idle_wait_s": idle_wait, **result})
    counted_after = canceled_total(metrics_url, model)
    seconds = len(results[0]["cpu_s_per_second_after_cancel"])
    return {
        "model": model,
        "side": side,
        "trials": trials,
        "window_s": window_s,
        "median_cpu_s_per_second_after_cancel": [
            statistics.median(r["cpu_s_per_second_after_cancel"][s] or 0.0 for r in results)
            for s in range(seconds)
        ],
        "median_idle_cpu_s_per_s": statistics.median(r["idle_cpu_s_per_s"] for r in results),
        "median_optimising_cpu_s_per_s": statistics.median(
            r["optimising_cpu_s_per_s"] for r in results
        ),
        "median_cpu_s_in_window": statistics.median(r["cpu_s_in_window"] for r in results),
        "median_busy_until_s": statistics.median(r["busy_until_s"] for r in results),
        "canceled_metric_delta": (
            None if counted_after is None else counted_after - (counted_before or 0.0)
        ),
        "results": results,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--window", type=float, default=10.0, help="seconds sampled per cancel")
    parser.add_argument("--side", type=int, default=512, help="content side in px (one tile)")
    parser.add_argument("--model", default=MODEL)
    parser.add_argument(
        "--busy-cpu", type=float, default=2.0, help="inference CPU-seconds before the cancel"
    )
    args = parser.parse_args()
    if not (1 <= args.trials <= MAX_TRIALS and 1 <= args.window <= MAX_WINDOW_S):
        parser.error(f"--trials must be 1..{MAX_TRIALS} and --window 1..{MAX_WINDOW_S}")
    config = MeshConfig(
        state_dir=Path(tempfile.mkdtemp(prefix="gouache-cancel-bench-")),
        ports=MeshPorts.ephemeral(),
        models=args.model,
        rate_limit_plans=UNLIMITED_PLANS,
    )
    mesh = Mesh(config)
    credentials = mesh.start()
    inference_pid = mesh.component("inference").pid
    assert inference_pid is not None
    metrics_url = f"http://127.0.0.1:{config.ports.metrics['inference']}/metrics"
    load_before = [round(x, 2) for x in os.getloadavg()]
    try:
        with GouacheClient(config.public_url, credentials.admin_api_key) as client:
            report = measure(
                client,
                inference_pid,
                metrics_url,
                model=args.model,
                trials=args.trials,
                side=args.side,
                busy_cpu_s=args.busy_cpu,
                window_s=args.window,
            )
    finally:
        mesh.stop()
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs",
        "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "command": " ".join(
            [Path(sys.executable).name, "-m", "loadtests.cancel_compute", *sys.argv[1:]]
        ),
        **report,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
