"""GPU engine benchmark: latency, batched throughput, memory and fp16 parity per model.

    # On a GPU node, with the ml-gpu extra (onnxruntime-gpu) installed:
    .venv/bin/python -m loadtests.gpu_bench --append loadtests/RESULTS.md
    # Anywhere, tiny (what CI runs): the same code on the CPU provider.
    .venv/bin/python -m loadtests.gpu_bench --device cpu --side 64 --batches 1 2 --runs 1

The one-pass models run on ONNX Runtime in both precisions; gatys runs in torch (CUDA on a
GPU node), once, in fp32. Each (model, precision) runs in a fresh subprocess, so the memory it reports is one
model version's: the process's GPU memory from `nvidia-smi` (CUDA context, ONNX
Runtime's arena at its peak, torch's encoder) on cuda, and the peak resident memory on
both. In the child: `build_onnx_family(model, device, precision)` (fp16 is measured
against fp32 on the probe first and refused past `FP16_PARITY`, as the inference
service does; the parity is reported), one cold stylization, `--runs` timed single
stylizations at `--side` px (median and slowest), then for each B in `--batches` a
`stylize_batch` of B contents (median of `--runs`, images/s). Inputs are scikit-image's
astronaut, chelsea and coffee, the style hubble_deep_field; feedforward gets its first
trained style by its catalog key. The families copy tensors through host memory around
each ONNX Runtime call, as serving does, and that copy is part of every figure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
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
from loadtests.engine_bench import timed

DEFAULT_MODELS = ("adain.lite0-v1", "feedforward.lite0-v1", "wct.lite0-v1", "gatys.lite0-fast")
"""The one-pass families on ONNX Runtime, and gatys, which optimises pixels in torch (CUDA
on a GPU node): it has no graph to convert, so it is measured once, in fp32."""
PRECISIONS = ("fp32", "fp16")


def _child(args: argparse.Namespace) -> dict[str, Any]:
    """Runs in the subprocess: loads one (model, precision) and measures it."""
    import numpy as np
    from skimage import data, transform

    from gouache.nst.base import StylizeControls, trained_style_keys
    from gouache.nst.batching import BatchingFamily, StylizeItem
    from gouache.nst.onnx_runtime import (
        PrecisionChoice,
        build_family,
        build_onnx_family,
        has_onnx_runtime,
        runs_on_cuda,
    )

    def image(pixels: np.ndarray) -> np.ndarray:
        resized = transform.resize(pixels, (args.side, args.side), anti_aliasing=True)
        return np.ascontiguousarray((resized * 255).round().astype(np.uint8))

    started = time.perf_counter()
    if has_onnx_runtime(args.model):
        family, choice = build_onnx_family(
            args.model, device=args.device, threads=args.threads or None, precision=args.precision
        )
        runtime = "onnx"
    else:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        family = build_family(args.model, device=args.device, runtime="torch")
        choice, runtime = PrecisionChoice("fp32", "torch"), "torch"
    load_s = time.perf_counter() - started
    contents = [image(data.astronaut()), image(data.chelsea()), image(data.coffee())]
    style = image(data.hubble_deep_field())
    keys = list(trained_style_keys(family)[:1]) or ["bench-style"]
    controls = StylizeControls()

    def one() -> None:
        family.stylize(contents[0], [style], [1.0], controls, style_keys=keys)

    started = time.perf_counter()
    one()
    cold_s = time.perf_counter() - started
    single = timed(one, args.runs)
    batched: dict[int, list[float]] = {}
    if isinstance(family, BatchingFamily):
        for size in args.batches:
            items = [
                StylizeItem(contents[i % len(contents)], [style], [1.0], controls, keys)
                for i in range(size)
            ]
            family.stylize_batch(items)  # warms this batch shape up
            batched[size] = timed(lambda items=items: family.stylize_batch(items), args.runs)
    return {
        "model": args.model,
        "precision": choice.precision,
        "asked": args.precision,
        "parity": (
            f"{choice.parity.mean:.3f} / {choice.parity.p999:.1f} / {choice.parity.max}"
            if choice.parity
            else ""
        ),
        "cuda": runs_on_cuda(args.device) if runtime == "onnx" else _torch_cuda(args.device),
        "runtime": runtime,
        "load_s": load_s,
        "cold_s": cold_s,
        "single_s": single,
        "batched_s": {str(size): times for size, times in batched.items()},
        "gpu_mib": _gpu_mib(),
        "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }


def _torch_cuda(device: str) -> bool:
    import torch

    return device == "cuda" and torch.cuda.is_available()


def _gpu_mib() -> float | None:
    """This process's GPU memory as the driver counts it, None without nvidia-smi."""
    import os

    try:
        listed = subprocess.run(
            ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in listed.splitlines():
        pid, _, used = line.partition(",")
        if pid.strip() == str(os.getpid()):
            return float(used.strip().split()[0])
    return 0.0


def _measure(args: argparse.Namespace, model: str, precision: str) -> dict[str, Any] | str:
    """Runs one child; its result, or the reason it failed (fp16 refused, say)."""
    command = [
        sys.executable,
        "-m",
        "loadtests.gpu_bench",
        *("--child", "--model", model, "--precision", precision),
        *("--device", args.device, "--side", str(args.side), "--runs", str(args.runs)),
        *("--threads", str(args.threads), "--batches", *map(str, args.batches)),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        return lines[-1] if lines else f"exit {done.returncode}"
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def report(args: argparse.Namespace, results: Sequence[dict[str, Any] | str]) -> str:
    """The Markdown section: one row per (model, precision), then the batch table."""
    import onnxruntime as ort

    today = dt.date.today().isoformat()
    command = "python -m loadtests.gpu_bench " + shlex.join(sys.argv[1:])
    device = _device_name() if args.device != "cpu" else cpu_model()
    lines = [
        f"### GPU engine, {args.side} px, {today}",
        "",
        f"Machine: {device}, {platform.system()}; onnxruntime {ort.__version__} "
        f"({', '.join(ort.get_available_providers())}). Command: `{command}`. "
        f"Median of {args.runs} timed runs after one cold call; memory is the model's own "
        "process (GPU: nvidia-smi; RSS: peak).",
        "",
        "| model | precision | fp16 vs fp32, uint8 levels: mean / p99.9 / max | load s | cold ms | p50 ms | max ms "
        "| GPU MiB | RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    batch_lines = [
        "",
        "| model | precision | " + " | ".join(f"B={b} img/s" for b in args.batches) + " |",
        "|---|---|" + "---|" * len(args.batches),
    ]
    for result in results:
        if isinstance(result, str):
            lines.append(f"| {result} |")
            continue
        single = result["single_s"]
        gpu = "n/a" if result["gpu_mib"] is None else f"{result['gpu_mib']:.0f}"
        served = result["precision"] + ("" if result["runtime"] == "onnx" else ", torch")
        served += "" if result["cuda"] else " (cpu)"
        lines.append(
            f"| {result['model']} | {served} | {result['parity'] or '-'} | "
            f"{result['load_s']:.1f} | {result['cold_s'] * 1000:.0f} | "
            f"{statistics.median(single) * 1000:.1f} | {max(single) * 1000:.1f} | "
            f"{gpu} | {result['rss_mib']:.0f} |"
        )
        rates = [
            f"{size / statistics.median(times):.1f}"
            for size, times in ((int(b), t) for b, t in result["batched_s"].items())
        ]
        if rates:
            batch_lines.append(f"| {result['model']} | {served} | " + " | ".join(rates) + " |")
    return "\n".join([*lines, *batch_lines, ""])


def _device_name() -> str:
    try:
        return subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "no nvidia-smi"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS))
    parser.add_argument("--precisions", default=",".join(PRECISIONS))
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--threads", type=int, default=0, help="CPU threads; 0: one per core")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per child")
    parser.add_argument("--append", type=Path, help="append the report to this Markdown file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--precision", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args)))
        return 0
    results: list[dict[str, Any] | str] = []
    from gouache.nst.onnx_runtime import has_onnx_runtime

    for model in args.models.split(","):
        for precision in args.precisions.split(",") if has_onnx_runtime(model) else ["fp32"]:
            result = _measure(args, model, precision)
            print(result if isinstance(result, str) else _summary(result), flush=True)
            results.append(
                result if not isinstance(result, str) else f"{model} | {precision} | {result}"
            )
    text = report(args, results)
    print(text)
    if args.append:
        with args.append.open("a") as out:
            out.write("\n" + text)
    return 0 if all(not isinstance(r, str) for r in results) else 1


def _summary(result: dict[str, Any]) -> str:
    return (
        f"{result['model']} {result['precision']}: p50 "
        f"{statistics.median(result['single_s']) * 1000:.1f} ms {result['parity']}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
