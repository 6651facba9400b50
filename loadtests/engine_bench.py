"""Engine benchmarks: 512 px and tiled 1024 px stylization, torch and ONNX, peak memory per model.

    .venv/bin/python loadtests/engine_bench.py --runs 5 --threads 2
    .venv/bin/python loadtests/engine_bench.py --runs 5 --append loadtests/RESULTS.md

Each (model, runtime) runs in a fresh subprocess, so its peak resident memory
(`resource.getrusage(RUSAGE_SELF).ru_maxrss`) is that of one loaded model version:
the Python process, torch, the encoder, the model and its working set at 1024 px.
In the child: build the family, stylize once at 512 px (cold: loads, style statistics),
then time `--runs` calls at 512 px and `--runs` tiled 1024 px images. Tiling is what the
tiling service does: `gouache.imaging.tiling.plan_tiles` with the model's tile size and
a 32 px overlap (the service's default), one `stylize` per tile with the style key (so
style statistics come from the family's cache, as in serving), `blend_tiles`. Inputs are
scikit-image's astronaut (512 px, and resized to 1024 px) and hubble_deep_field as the
style; a feedforward model gets its first trained style through its catalog key.
Medians of the timed runs are reported with min and max; the machine is shared, so
compare rows of one run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gouache.nst.machine import cpu_model

DEFAULT_MODELS = ("adain.lite0-v1", "feedforward.lite0-v1")
TILE_OVERLAP = 32
TARGETS = {"512": 0.5, "1024": 2.5, "rss_mib": 1536.0}
"""Issue 3's targets: seconds at 512 px and tiled 1024 px on 2 CPU cores; MiB per model."""


def _child(model: str, runtime: str, runs: int, threads: int) -> dict[str, Any]:
    """Runs in the subprocess: loads one model version and measures it."""
    import numpy as np
    import torch
    from PIL import Image
    from skimage import data

    from gouache.imaging.tiling import blend_tiles, extract_tile, plan_tiles
    from gouache.nst import registry
    from gouache.nst.base import StylizeControls
    from gouache.nst.families.feedforward import FeedforwardFamily
    from gouache.nst.onnx_runtime import build_family, check_runtime

    torch.set_num_threads(threads)
    started = time.perf_counter()
    family = build_family(model, runtime=check_runtime(runtime), threads=threads)
    load_s = time.perf_counter() - started
    rss_loaded = _peak_rss_mib()
    spec = registry.get(model)

    def sized(image: np.ndarray, side: int) -> np.ndarray:
        return np.asarray(Image.fromarray(image).resize((side, side), Image.Resampling.LANCZOS))

    content_512 = sized(data.astronaut(), 512)
    content_1024 = sized(data.astronaut(), 1024)
    style = sized(data.hubble_deep_field(), 512)
    key = "bench-style"
    if isinstance(family, FeedforwardFamily):
        key = family.trained_styles[0].sha256
    controls = StylizeControls()

    def one(content: np.ndarray) -> np.ndarray:
        return family.stylize(content, [style], [1.0], controls, style_keys=[key])

    def tiled(content: np.ndarray) -> np.ndarray:
        height, width = content.shape[:2]
        tiles = plan_tiles(width, height, spec.tile_size, TILE_OVERLAP)
        outputs = [one(np.ascontiguousarray(extract_tile(content, tile))) for tile in tiles]
        blended = blend_tiles(tiles, outputs, width, height, TILE_OVERLAP)
        return np.rint(blended).clip(0, 255).astype(np.uint8)

    started = time.perf_counter()
    first = one(content_512)
    cold_s = time.perf_counter() - started
    assert first.shape == content_512.shape
    times_512 = timed(lambda: one(content_512), runs)
    times_1024 = timed(lambda: tiled(content_1024), runs)
    tiles = len(plan_tiles(1024, 1024, spec.tile_size, TILE_OVERLAP))
    return {
        "model": model,
        "runtime": runtime,
        "threads": threads,
        "load_s": load_s,
        "cold_512_s": cold_s,
        "s_512": times_512,
        "s_1024": times_1024,
        "tiles_1024": tiles,
        "tile_size": spec.tile_size,
        "rss_loaded_mib": rss_loaded,
        "rss_peak_mib": _peak_rss_mib(),
    }


def timed(call: Any, runs: int) -> list[float]:
    """Wall seconds of each of `runs` calls of `call`, in order."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


def _peak_rss_mib() -> float:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure(model: str, runtime: str, runs: int, threads: int) -> dict[str, Any]:
    """Runs `_child` in a fresh interpreter and returns its measurements."""
    command = [
        sys.executable,
        __file__,
        "--child",
        model,
        "--runtime",
        runtime,
        "--runs",
        str(runs),
        "--threads",
        str(threads),
    ]
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(command, capture_output=True, text=True, env=environment, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{model} ({runtime}) failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _stats(values: Sequence[float]) -> str:
    return f"{statistics.median(values):.3f} s ({min(values):.3f}-{max(values):.3f})"


def table(results: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| model | runtime | 512 px median (min-max) | 1024 px tiled median (min-max) "
        "| first 512 px call | load | peak RSS after load | peak RSS |",
        "|---|---|---|---|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['model']} | {r['runtime']} | {_stats(r['s_512'])} "
            f"| {_stats(r['s_1024'])}, {r['tiles_1024']} tiles of {r['tile_size']} "
            f"| {r['cold_512_s']:.2f} s | {r['load_s']:.2f} s "
            f"| {r['rss_loaded_mib']:.0f} MiB | {r['rss_peak_mib']:.0f} MiB |"
        )
    return "\n".join(lines) + "\n"


def section(results: Sequence[dict[str, Any]], *, command: str, runs: int, threads: int) -> str:
    verdicts = []
    for r in results:
        met = (
            statistics.median(r["s_512"]) <= TARGETS["512"]
            and statistics.median(r["s_1024"]) <= TARGETS["1024"]
            and r["rss_peak_mib"] <= TARGETS["rss_mib"]
        )
        verdicts.append(f"{r['model']} ({r['runtime']}): {'all met' if met else 'NOT all met'}")
    machine = (
        f"{platform.node()}, {platform.machine()}, {os.cpu_count()} CPUs "
        f"({platform.processor() or cpu_model()}), Python {platform.python_version()}"
    )
    return f"""
## Engine: 512 px and tiled 1024 px, torch and ONNX Runtime ({dt.date.today().isoformat()})

`{command}` — {machine}; {threads} torch / ONNX Runtime intra-op threads, medians of
{runs} runs after one untimed call, each (model, runtime) in a fresh process (peak RSS =
`ru_maxrss` of that process: Python, torch, onnxruntime, the encoder and one model). The
machine is shared with other work; compare rows within this run.
Targets (issue 3): 512 px ≤ {TARGETS["512"]} s, 1024 px through tiling ≤ {TARGETS["1024"]} s,
peak memory per loaded model version ≤ {TARGETS["rss_mib"]:.0f} MiB.

{table(results)}
{"; ".join(verdicts)}.
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS))
    parser.add_argument("--runtimes", default="torch,onnx")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--append", help="append the results section to this markdown file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--runtime", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child, args.runtime, args.runs, args.threads)))
        return 0
    results = []
    for model in (m.strip() for m in args.models.split(",") if m.strip()):
        for runtime in (r.strip() for r in args.runtimes.split(",") if r.strip()):
            result = measure(model, runtime, args.runs, args.threads)
            print(
                f"{model} {runtime}: 512 {_stats(result['s_512'])}, 1024 {_stats(result['s_1024'])}, "
                f"peak RSS {result['rss_peak_mib']:.0f} MiB",
                file=sys.stderr,
            )
            results.append(result)
    command = " ".join(
        [".venv/bin/python loadtests/engine_bench.py", *map(shlex.quote, argv or sys.argv[1:])]
    )
    text = section(results, command=command, runs=args.runs, threads=args.threads)
    print(text)
    if args.append:
        with Path(args.append).open("a") as handle:
            handle.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
