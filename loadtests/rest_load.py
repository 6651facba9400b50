"""REST throughput and latency under concurrency, with Locust, beside the engine's own throughput.

    .venv/bin/python -m loadtests.rest_load                       # 1, 4 and 16 clients, 40 s each
    .venv/bin/python -m loadtests.rest_load --users 4 --duration 60 --profile
    .venv/bin/python -m loadtests.rest_load --url http://127.0.0.1:8080 --api-key gk_...

Starts a private `gouache up` mesh on free ports of 127.0.0.1 (a fresh state directory, the
rate limit raised, inference loading only `--model`), unless `--url` and `--api-key` name
a running one. First it measures the engine alone in a subprocess: `--model` built as
inference builds it (ONNX Runtime where the family exports, `--engine-threads` threads),
stylizing the same 512 px content and style back to back; that is the machine's ceiling.
Then for each client count it runs Locust headless (`loadtests/locustfile.py`: upload,
create, poll, download per job) for `--duration` seconds and reads the per-job records:
jobs/s counts the jobs that ended inside the window after `--warmup` seconds, latencies
are those of jobs that started in it. It also reads each component's CPU seconds from
/proc over the window (and Locust's own, which shares the machine), and with `--profile`
samples every Python service with py-spy during the window and prints the functions that
hold the most samples (own time, and inclusive time of the project's code).

Prints a Markdown table and, with `--json PATH`, writes every figure. Bounded: each level
ends after its duration plus a short stop timeout; aimed at 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gouache.nst.machine import cpu_model

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
PY_SERVICES = ("auth", "storage", "jobs", "tiling", "inference", "feedback")
PROJECT_MARKERS = ("(services/", "(gouache/")


@dataclass
class Level:
    users: int
    jobs: int = 0
    failed: int = 0
    cached: int = 0
    window_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    creates_ms: list[float] = field(default_factory=list)
    cpu_s: dict[str, float] = field(default_factory=dict)
    profile: dict[str, Any] = field(default_factory=dict)

    @property
    def jobs_per_s(self) -> float:
        return self.jobs / self.window_s if self.window_s else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "users": self.users,
            "jobs": self.jobs,
            "failed": self.failed,
            "cached": self.cached,
            "window_s": round(self.window_s, 1),
            "jobs_per_s": round(self.jobs_per_s, 2),
            "latency_ms": _quantiles(self.latencies_ms),
            "create_ms": _quantiles(self.creates_ms, (50, 99)),
            "cpu_s": {name: round(value, 2) for name, value in self.cpu_s.items()},
            "profile": self.profile,
        }


def _quantiles(values: Sequence[float], qs: Sequence[int] = (50, 95, 99)) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    out = {}
    for q in qs:
        index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
        out[f"p{q}"] = round(ordered[index], 1)
    return out


# --- the engine alone -----------------------------------------------------------------


# Loading the model and warming up must end before the workers' common start.
ENGINE_START_DELAY_S = 20.0


def engine_child(
    model: str, side: int, runs: int, threads: int, start_at: float | None = None
) -> dict[str, Any]:
    """In a subprocess: the model as inference builds it, stylizing back to back.

    With `start_at` (a wall-clock time), the measured calls begin then, so that several
    children measured together overlap (warm-up and model loading before it)."""
    import numpy as np
    import torch
    from PIL import Image
    from skimage import data

    from gouache.nst.base import StylizeControls
    from gouache.nst.onnx_runtime import build_family, check_runtime

    torch.set_num_threads(threads)
    family = build_family(model, runtime=check_runtime("onnx"), threads=threads)

    def sized(image: np.ndarray) -> np.ndarray:
        return np.asarray(Image.fromarray(image).resize((side, side), Image.Resampling.LANCZOS))

    content, style = sized(data.astronaut()), sized(data.immunohistochemistry())
    controls = StylizeControls()
    for _ in range(2):
        family.stylize(content, [style], [1.0], controls, style_keys=["bench-style"])
    if start_at is not None:
        time.sleep(max(0.0, start_at - time.time()))
    began = time.time()
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        family.stylize(content, [style], [1.0], controls, style_keys=["bench-style"])
        seconds.append(time.perf_counter() - started)
    median = statistics.median(seconds)
    return {
        "model": model,
        "side": side,
        "threads": threads,
        "runs": runs,
        "median_s": round(median, 4),
        "min_s": round(min(seconds), 4),
        "images_per_s": round(1 / median, 2),
        "began": began,
        "ended": time.time(),
    }


def measure_engine(
    model: str, side: int, runs: int, threads: int, workers: int = 1
) -> dict[str, Any]:
    """The engine's throughput: one process (`workers` 1) timed call by call, or `workers`
    processes stylizing at once from the same instant (as inference runs
    GOUACHE_INFERENCE_MAX_CONCURRENCY computations side by side), counted over the wall time
    from that instant to the last one's end."""
    spec: dict[str, Any] = {"model": model, "side": side, "runs": runs, "threads": threads}
    if workers > 1:
        spec["start_at"] = time.time() + ENGINE_START_DELAY_S
    command = [sys.executable, "-m", "loadtests.rest_load", "--engine-child", json.dumps(spec)]
    children = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(workers)
    ]
    results: list[dict[str, Any]] = []
    for child in children:
        out, err = child.communicate()
        if child.returncode != 0:
            raise RuntimeError(f"engine measurement failed:\n{err[-2000:]}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    result = dict(results[0])
    result["workers"] = workers
    if workers > 1:
        if max(r["began"] for r in results) - spec["start_at"] > 1.0:
            raise RuntimeError("an engine worker started late: raise ENGINE_START_DELAY_S")
        wall = max(r["ended"] for r in results) - spec["start_at"]
        result["images_per_s"] = round(workers * runs / wall, 2)
        result["median_s"] = round(statistics.median(r["median_s"] for r in results), 4)
    return result


# --- CPU and profiles -----------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process and of its live children (PostgreSQL's backends are
    processes of their own; a process that exited is in neither)."""
    ticks = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat(int(entry.name))
        if fields is None:
            continue
        if int(entry.name) == pid or int(fields[1]) == pid:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _collapsed_top(raw: str, limit: int = 12) -> dict[str, Any]:
    """Own and inclusive sample counts from py-spy's raw (collapsed stack) output."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        own[frames[-1]] += count
        for frame in set(frames):
            if any(marker in frame for marker in PROJECT_MARKERS):
                inclusive[frame] += count
    return {
        "samples": total,
        "own": [(frame, count) for frame, count in own.most_common(limit)],
        "inclusive_project": [(frame, count) for frame, count in inclusive.most_common(limit)],
    }


def _start_profilers(pids: dict[str, int], seconds: float, out: Path) -> list[Any]:
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if py_spy is None:
        raise SystemExit("--profile needs py-spy (pip install -e '.[dev]')")
    running = []
    for name, pid in pids.items():
        target = out / f"{name}.txt"
        command = [
            py_spy,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, int(seconds))),
            "--rate",
            "50",
            "--format",
            "raw",
            # Only threads holding the GIL: Python's own CPU time (native work that releases
            # it, such as ONNX Runtime's, shows in the CPU seconds instead).
            "--gil",
            "--nonblocking",
            "--output",
            str(target),
        ]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        running.append((name, target, process))
    return running


def _collect_profiles(running: list[Any]) -> dict[str, Any]:
    profiles = {}
    for name, target, process in running:
        try:
            _, stderr = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            stderr = b"timed out"
        if process.returncode == 0 and target.exists():
            profiles[name] = _collapsed_top(target.read_text())
        else:
            profiles[name] = {"error": stderr.decode(errors="replace")[-500:]}
    return profiles


# --- one level ------------------------------------------------------------------------


def run_level(
    url: str,
    api_key: str,
    users: int,
    args: argparse.Namespace,
    pids: dict[str, int],
    work: Path,
) -> Level:
    records = work / f"jobs-{users}.jsonl"
    records.unlink(missing_ok=True)
    env = {
        **os.environ,
        "GOUACHE_LOAD_API_KEY": api_key,
        "GOUACHE_LOAD_MODEL": args.model,
        "GOUACHE_LOAD_SIDE": str(args.side),
        "GOUACHE_LOAD_POLL_S": str(args.poll_s),
        "GOUACHE_LOAD_RECORDS": str(records),
    }
    locust = str(Path(sys.executable).with_name("locust"))
    command = [
        locust,
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        url,
        "--users",
        str(users),
        "--spawn-rate",
        str(users),
        "--run-time",
        f"{args.duration}s",
        "--stop-timeout",
        "30",
        "--only-summary",
        "--loglevel",
        "WARNING",
    ]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    time.sleep(args.warmup)
    window_start = time.time()
    cpu_before = {name: _cpu_seconds(pid) for name, pid in pids.items()}
    cpu_before["locust"] = _cpu_seconds(process.pid)
    window = max(1.0, args.duration - args.warmup - 1)
    python_pids = {name: pid for name, pid in pids.items() if name in PY_SERVICES}
    profilers = _start_profilers(python_pids, window, work) if args.profile else []
    time.sleep(window)
    window_end = time.time()
    cpu_after = {name: _cpu_seconds(pid) for name, pid in pids.items()}
    cpu_after["locust"] = _cpu_seconds(process.pid)
    output, _ = process.communicate(timeout=args.duration + 90)
    level = Level(users=users, window_s=window_end - window_start)
    level.cpu_s = {name: cpu_after[name] - cpu_before[name] for name in cpu_after}
    if profilers:
        level.profile = _collect_profiles(profilers)
    if not records.exists():
        raise RuntimeError(f"Locust recorded no job (exit {process.returncode}):\n{output[-3000:]}")
    for line in records.read_text().splitlines():
        job = json.loads(line)
        if job["status"] != "succeeded":
            if window_start <= job["end"] <= window_end:
                level.failed += 1
            continue
        if window_start <= job["end"] <= window_end:
            level.jobs += 1
            level.cached += int(job["cached"])
        if window_start <= job["start"] <= window_end:
            level.latencies_ms.append(job["latency_ms"])
            level.creates_ms.append(job["create_ms"])
    return level


# --- report ---------------------------------------------------------------------------


def markdown(engine: dict[str, Any], levels: list[Level]) -> str:
    ceiling = engine["images_per_s"]
    lines = [
        f"Engine alone: {engine['model']} at {engine['side']} px, "
        f"{engine.get('workers', 1)} x {engine['threads']} threads, "
        f"median {engine['median_s'] * 1000:.0f} ms per image, {ceiling:.2f} images/s.",
        "",
        "| clients | jobs/s | % of engine | job latency p50 / p95 ms | create p50 / p99 ms "
        "| failed | CPU s in window (top) |",
        "|---:|---:|---:|---|---|---:|---|",
    ]
    for level in levels:
        lat = _quantiles(level.latencies_ms)
        create = _quantiles(level.creates_ms, (50, 99))
        cpu = sorted(level.cpu_s.items(), key=lambda item: -item[1])[:5]
        lines.append(
            f"| {level.users} | {level.jobs_per_s:.2f} | {100 * level.jobs_per_s / ceiling:.0f} % "
            f"| {lat.get('p50', 0):.0f} / {lat.get('p95', 0):.0f} "
            f"| {create.get('p50', 0):.0f} / {create.get('p99', 0):.0f} | {level.failed} "
            f"| {', '.join(f'{name} {seconds:.1f}' for name, seconds in cpu)} |"
        )
    for level in levels:
        for name, profile in level.profile.items():
            if "own" not in profile:
                lines.append(f"\nprofile of {name} at {level.users} clients failed: {profile}")
                continue
            lines.append(
                f"\n{name} at {level.users} clients, {profile['samples']} samples; own time:"
            )
            total = max(1, profile["samples"])
            for frame, count in profile["own"][:8]:
                lines.append(f"  {100 * count / total:5.1f} %  {frame}")
            lines.append("  project code, inclusive:")
            for frame, count in profile["inclusive_project"][:8]:
                lines.append(f"  {100 * count / total:5.1f} %  {frame}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--engine-child", help=argparse.SUPPRESS)
    parser.add_argument("--users", default="1,4,16", help="client counts, comma-separated")
    parser.add_argument("--duration", type=int, default=40, help="seconds per client count")
    parser.add_argument("--warmup", type=float, default=8.0, help="seconds not measured")
    parser.add_argument("--model", default="adain.lite0-v1.1")
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument(
        "--poll-s", type=float, default=0.0, help="poll GET /v1/jobs/{id} this often (0: long poll)"
    )
    parser.add_argument("--engine-runs", type=int, default=20)
    parser.add_argument("--engine-threads", type=int, default=2)
    parser.add_argument(
        "--engine-workers",
        type=int,
        default=1,
        help="engine processes stylizing at once (2 with --engine-threads 1: as inference runs)",
    )
    parser.add_argument("--profile", action="store_true", help="py-spy every service")
    parser.add_argument(
        "--backend",
        choices=("local", "postgres"),
        default="local",
        help="the mesh's backend: SQLite and files, or its own PostgreSQL and MinIO",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="GOUACHE_X=V",
        help="extra setting for the mesh's services (repeatable)",
    )
    parser.add_argument("--url")
    parser.add_argument("--api-key")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    args = parser.parse_args(argv)
    if args.engine_child:
        spec = json.loads(args.engine_child)
        print(
            json.dumps(
                engine_child(
                    spec["model"], spec["side"], spec["runs"], spec["threads"], spec.get("start_at")
                )
            )
        )
        return 0
    if args.engine_workers < 1 or args.engine_threads < 1:
        parser.error("--engine-workers and --engine-threads must be at least 1")
    if args.warmup >= args.duration - 1:
        parser.error("--warmup must leave at least a second of --duration")
    users = [int(part) for part in args.users.split(",") if part.strip()]
    engine = measure_engine(
        args.model, args.side, args.engine_runs, args.engine_threads, args.engine_workers
    )
    print(
        f"engine: {engine['images_per_s']:.2f} images/s ({engine['median_s'] * 1000:.0f} ms)",
        file=sys.stderr,
    )
    mesh = None
    work = Path(tempfile.mkdtemp(prefix="gouache-load-"))
    work.chmod(0o711)  # PostgreSQL runs as its own account under root and must reach it
    pids: dict[str, int] = {}
    if args.url and args.api_key:
        url, api_key = args.url, args.api_key
    else:
        from gouache.cli.mesh import UNLIMITED_PLANS, Mesh, MeshConfig, MeshPorts

        extra = dict(item.split("=", 1) for item in args.env)
        config = MeshConfig(
            state_dir=work / "state",
            ports=MeshPorts.ephemeral(),
            models=args.model,
            rate_limit_plans=UNLIMITED_PLANS,
            extra_env=extra,
            backend=args.backend,
        )
        mesh = Mesh(config)
        credentials = mesh.start()
        url, api_key = config.public_url, credentials.admin_api_key
        for component in mesh.components:
            if component.pid is not None:
                pids[component.name] = component.pid
    levels = []
    try:
        for count in users:
            level = run_level(url, api_key, count, args, pids, work)
            print(
                f"{count} clients: {level.jobs_per_s:.2f} jobs/s, "
                f"p95 {_quantiles(level.latencies_ms).get('p95', 0):.0f} ms",
                file=sys.stderr,
            )
            levels.append(level)
    finally:
        if mesh is not None:
            mesh.stop()
    load = os.getloadavg()
    report = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()}, {cpu_model()}, {os.cpu_count()} cores",
        "load_average": [round(value, 2) for value in load],
        "command": " ".join(
            [Path(sys.executable).name, "-m", "loadtests.rest_load", *sys.argv[1:]]
        ),
        "engine": engine,
        "levels": [level.summary() for level in levels],
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    print(f"{report['date']} · {report['machine']} · load average {report['load_average']}")
    print(f"`{report['command']}`\n")
    print(markdown(engine, levels))
    shutil.rmtree(work, ignore_errors=True)
    return 0 if all(level.jobs > 0 for level in levels) else 1


if __name__ == "__main__":
    sys.exit(main())
