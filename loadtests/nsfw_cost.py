"""What content safety adds to an upload: the NSFW score of one image on this CPU.

    .venv/bin/python -m loadtests.nsfw_cost --repeats 50

Loads the classifier as the storage service does (`OpenNsfwScorer.load`, ONNX Runtime's CPU
provider, warmed up) and times, on scikit-image's astronaut (512 px, benign) encoded as PNG
and resized to each `--sides`: the validation decode alone (`validate_and_decode`, what every
upload already paid), the score alone on those decoded pixels, and both in a row (what an
upload now costs in its worker thread), for each `--threads` count. Prints one JSON report:
median, p95 and max in milliseconds, the model's load time and the process's peak RSS.
Nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import skimage.data
from PIL import Image

from gouache.imaging.codec import encode, validate_and_decode
from services.storage.safety import OpenNsfwScorer


def _timings(run: Callable[[], object], repeats: int) -> dict[str, float]:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {
        "median_ms": round(statistics.median(samples), 2),
        "p95_ms": round(samples[min(len(samples) - 1, int(0.95 * len(samples)))], 2),
        "max_ms": round(samples[-1], 2),
    }


def _png(side: int) -> bytes:
    photo = Image.fromarray(skimage.data.astronaut()).resize((side, side), Image.Resampling.LANCZOS)
    return encode(np.asarray(photo), "png")


def _row(
    scorer: OpenNsfwScorer, threads: int, side: int, load_ms: float, repeats: int
) -> dict[str, Any]:
    data = _png(side)
    pixels = validate_and_decode(data).pixels

    def decode_and_score() -> float:
        return scorer.score(validate_and_decode(data).pixels)

    return {
        "threads": threads,
        "side": side,
        "png_bytes": len(data),
        "nsfw_score": round(scorer.score(pixels), 4),
        "model_load_ms": round(load_ms, 1),
        "decode": _timings(lambda: validate_and_decode(data), repeats),
        "score": _timings(lambda: scorer.score(pixels), repeats),
        "decode_and_score": _timings(decode_and_score, repeats),
    }


def measure(sides: list[int], threads: list[int], repeats: int) -> dict[str, Any]:
    report: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "repeats": repeats,
        "rows": [],
    }
    for count in threads:
        started = time.perf_counter()
        scorer = OpenNsfwScorer.load(threads=count)
        load_ms = (time.perf_counter() - started) * 1000
        report["rows"] += [_row(scorer, count, side, load_ms, repeats) for side in sides]
    report["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.nsfw_cost")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--sides", type=int, nargs="+", default=[512, 2048])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args(argv)
    if args.repeats < 1 or min(args.sides) < 16 or min(args.threads) < 1:
        parser.error("--repeats and --threads must be at least 1, --sides at least 16")
    print(json.dumps(measure(args.sides, args.threads, args.repeats), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
