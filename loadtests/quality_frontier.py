"""Where the one-pass models stand against gatys's own style/content trade-off, on the judge.

    .venv/bin/python -m loadtests.quality_frontier
    .venv/bin/python -m loadtests.quality_frontier --content-weights 10,40,160 --models wct.lite0-v1
    .venv/bin/python -m loadtests.quality_frontier --content-weights "" --models "" \
        --gatys-variant '{"content_weight": 40, "steps": 500}'

Issue 9 asks of the best one-pass model, on `gouache eval`'s grid and measured with the
independent judge (EfficientNet-Lite1, `gouache.nst.quality.lite1_meter`), a style distance
at most 0.65x the histogram baseline's with a content distance at most 1.35x. A one-pass
network trained on Lite0 losses learns to approximate what optimising those losses gives;
this script measures what optimising them gives at each balance. It runs gatys (the pinned
`--gatys` version's settings) with each `--content-weights` value in place of its content
weight, any `--gatys-variant` (a JSON object of `GatysConfig` fields to override, e.g.
more style taps or steps), and each one-pass `--models`, on the same grid, and prints each one's median Lite1
style and content distances as ratios to the baseline's, with whether it meets the bar.

The grid is `gouache eval`'s (`gouache.nst.eval_grid.load_grid`: the shared corpus when
`--data` has a manifest, else scikit-image's images, whose numbers are not comparable).
One torch thread by default, like `gouache eval --threads 1`. Prints one JSON report, then
the table in Markdown. Nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from gouache.nst import registry
from gouache.nst.base import RGBImage, StylizeControls
from gouache.nst.encoders.lite0 import load_lite0
from gouache.nst.eval_grid import DEFAULT_DATA_DIR, EvalGrid, load_grid
from gouache.nst.families.gatys import GatysConfig, GatysFamily
from gouache.nst.quality import QualityMeter, histogram_baseline, lite1_meter

STYLE_BAR = 0.65
CONTENT_BAR = 1.35

Stylize = Callable[[RGBImage, RGBImage], RGBImage]


def _medians(grid: EvalGrid, judge: QualityMeter, stylize: Stylize) -> tuple[float, float, float]:
    """Median style and content distances over the grid, and the median seconds per pair."""
    styles, contents, seconds = [], [], []
    for content, style in grid.pairs():
        started = time.perf_counter()
        output = stylize(content.pixels, style.pixels)
        seconds.append(time.perf_counter() - started)
        styles.append(judge.style_distance(output, style.pixels))
        contents.append(judge.content_distance(output, content.pixels))
    return statistics.median(styles), statistics.median(contents), statistics.median(seconds)


def _row(
    name: str, medians: tuple[float, float, float], baseline: tuple[float, float, float]
) -> dict[str, Any]:
    style, content, seconds = medians
    style_ratio = style / baseline[0]
    content_ratio = content / baseline[1]
    return {
        "model": name,
        "lite1_style": round(style, 4),
        "lite1_content": round(content, 4),
        "style_ratio": round(style_ratio, 3),
        "content_ratio": round(content_ratio, 3),
        "median_seconds": round(seconds, 3),
        "meets_bar": style_ratio <= STYLE_BAR and content_ratio <= CONTENT_BAR,
    }


def _one_pass(name: str) -> Stylize:
    family = registry.build_family(name)
    controls = StylizeControls()

    def stylize(content: RGBImage, style: RGBImage) -> RGBImage:
        return family.stylize(content, [style], [1.0], controls)

    return stylize


def _gatys(config: GatysConfig, changes: dict[str, Any]) -> Stylize:
    family = GatysFamily(dataclasses.replace(config, **changes), load_lite0())
    controls = StylizeControls()

    def stylize(content: RGBImage, style: RGBImage) -> RGBImage:
        return family.stylize(content, [style], [1.0], controls)

    return stylize


def _floats(text: str) -> list[float]:
    return [float(part) for part in text.split(",") if part.strip()]


def _variant(text: str) -> dict[str, Any]:
    changes = json.loads(text)
    if not isinstance(changes, dict):
        raise argparse.ArgumentTypeError(f"a gatys variant is a JSON object, got {text!r}")
    return changes


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--gatys", default="gatys.lite0-v1", help="whose settings gatys runs with")
    parser.add_argument("--content-weights", type=_floats, default=[10.0, 20.0, 40.0, 70.0, 160.0])
    parser.add_argument(
        "--models",
        type=_names,
        default=["wct.lite0-v1", "adain.lite0-v1.1", "feedforward.lite0-v1"],
    )
    parser.add_argument("--gatys-variant", type=_variant, action="append", default=[])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    # Everything is checked before the first image is stylized.
    try:
        pinned = dict(registry.get(args.gatys).config)
        for name in args.models:
            registry.get(name)
        config = GatysConfig.from_mapping(pinned)
        variants = [{"content_weight": weight} for weight in args.content_weights]
        variants += args.gatys_variant
        for changes in variants:
            GatysConfig.from_mapping({**pinned, **changes})
    except KeyError as exc:
        parser.error(str(exc.args[0]))
    except ValueError as exc:
        parser.error(str(exc))
    except TypeError as exc:
        parser.error(f"a gatys setting has the wrong type ({exc})")
    torch.set_num_threads(args.threads)

    grid = load_grid(args.data)
    judge = lite1_meter()
    baseline = _medians(grid, judge, histogram_baseline)
    rows = [_row("baseline.histogram", baseline, baseline)]
    for changes in variants:
        medians = _medians(grid, judge, _gatys(config, changes))
        label = " ".join(f"{key}={json.dumps(value)}" for key, value in changes.items())
        rows.append(_row(f"{args.gatys} {label}", medians, baseline))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    for name in args.models:
        rows.append(_row(name, _medians(grid, judge, _one_pass(name)), baseline))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)

    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} ({platform.processor() or platform.machine()})",
        "grid": f"{grid.source}: {len(grid.contents)} contents x {len(grid.styles)} styles",
        "judge": "EfficientNet-Lite1 (gouache.nst.quality.lite1_meter), medians over the grid",
        "bar": {"style_ratio_at_most": STYLE_BAR, "content_ratio_at_most": CONTENT_BAR},
        "threads": args.threads,
        "rows": rows,
    }
    print(json.dumps(report, indent=2))
    print()
    print("| model | Lite1 style / baseline | Lite1 content / baseline | meets the bar |")
    print("|---|---:|---:|---|")
    for row in rows:
        verdict = "yes" if row["meets_bar"] else "no"
        print(
            f"| {row['model']} | {row['style_ratio']:.3f} | {row['content_ratio']:.3f} | {verdict} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
