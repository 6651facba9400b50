"""The fixed content x style evaluation: stylize every pair with each model, measure it,
and write the table and sheet (`gouache eval`). The grid is in eval_grid.py, the results
and their writers in eval_report.py."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gouache.nst.base import Cancellation, RGBImage, StyleFamily, StylizeControls
from gouache.nst.eval_grid import DEFAULT_DATA_DIR, GRID_CONTENTS, GRID_STYLES, EvalGrid, load_grid
from gouache.nst.eval_report import (
    IDENTITY_NAME,
    REFERENCE_NAMES,
    EvalReport,
    ModelUnderTest,
    PairResult,
    write_contact_sheet,
    write_json,
    write_markdown,
)
from gouache.nst.quality import (
    BASELINE_NAME,
    EVAL_SIDE,
    HistogramBaseline,
    QualityMeter,
    lite1_meter,
)
from gouache.runtime.errors import InvalidArgument


class _Identity:
    """Returns the content unchanged: the starting point every model moves away from."""

    name = "identity"

    def stylize(
        self,
        content: RGBImage,
        styles: Sequence[RGBImage],
        weights: Sequence[float],
        controls: StylizeControls,
        *,
        style_keys: Sequence[str] | None = None,
        cancellation: Cancellation | None = None,
    ) -> RGBImage:
        return content.copy()


def reference_models() -> list[ModelUnderTest]:
    """The two references every evaluation includes: the content itself and the baseline."""
    return [
        ModelUnderTest(IDENTITY_NAME, "identity", "numpy", _Identity),
        ModelUnderTest(BASELINE_NAME, "baseline", "numpy", HistogramBaseline),
    ]


def evaluate(
    grid: EvalGrid,
    models: Sequence[ModelUnderTest],
    *,
    meter: QualityMeter,
    judge: QualityMeter | None = None,
    controls: StylizeControls | None = None,
    on_result: Callable[[str, PairResult], None] | None = None,
) -> EvalReport:
    """Stylizes every pair with every model (plus the references) and measures each output.

    `meter` gives the Lite0 distances; `judge`, when given, measures every output again
    on a network no model was fitted to (`gouache.nst.quality.lite1_meter`).

    Models are built one at a time, just before their pairs, and dropped afterwards, so
    only one is in memory. Each call gets the style's pixel digest as its style key, so
    families that cache style statistics reuse them across contents, as in serving.
    """
    settings = controls if controls is not None else StylizeControls()
    everyone = [*reference_models(), *(m for m in models if m.name not in REFERENCE_NAMES)]
    results: dict[str, tuple[PairResult, ...]] = {}
    skipped: dict[str, str] = {}
    for model in everyone:
        family = model.build()
        rows = []
        try:
            for content, style in grid.pairs():
                started = time.perf_counter()
                output = family.stylize(
                    content.pixels, [style.pixels], [1.0], settings, style_keys=[style.key]
                )
                seconds = time.perf_counter() - started
                distances = meter.measure(output, content.pixels, style.pixels)
                judged = (
                    None if judge is None else judge.measure(output, content.pixels, style.pixels)
                )
                row = PairResult(
                    content=content.name,
                    style=style.name,
                    style_distance=distances.style,
                    content_distance=distances.content,
                    seconds=seconds,
                    image=output,
                    judge_style=None if judged is None else judged.style,
                    judge_content=None if judged is None else judged.content,
                )
                rows.append(row)
                if on_result is not None:
                    on_result(model.name, row)
        except InvalidArgument as refused:
            skipped[model.name] = refused.message
            continue
        finally:
            del family
        results[model.name] = tuple(rows)
    return EvalReport(
        grid=grid,
        side=meter.side,
        controls=settings,
        results=results,
        models={m.name: m for m in everyone},
        skipped=skipped,
        judge=None if judge is None else judge.name,
    )


@dataclass(frozen=True)
class EvalOptions:
    """What `gouache eval` runs: which models, on which grid, and where results go."""

    models: tuple[str, ...]
    data_dir: Path | None = DEFAULT_DATA_DIR
    contents: int = GRID_CONTENTS
    styles: int = GRID_STYLES
    seed: int = 0
    side: int = EVAL_SIDE
    runtime: str = "torch"
    device: str = "cpu"
    table: Path = Path("docs/quality.md")
    sheet: Path | None = Path("docs/quality/contact_sheet.jpg")
    results_json: Path | None = Path("docs/quality/results.json")
    cell: int = 160
    command: str = "gouache eval"
    judge: bool = True
    """Measure every output again with the independent Lite1 judge."""


def registered_models(names: Sequence[str], *, runtime: str, device: str) -> list[ModelUnderTest]:
    """Models from the registry, each built on `device` with `runtime` when first needed."""
    from gouache.nst import registry
    from gouache.nst.onnx_runtime import build_family, check_runtime

    chosen = check_runtime(runtime)
    models = []
    for name in names:
        spec = registry.get(name)

        def build(name: str = name) -> StyleFamily:
            return build_family(name, device=device, runtime=chosen)

        models.append(ModelUnderTest(name, spec.family, chosen, build))
    return models


def run(
    options: EvalOptions, *, on_result: Callable[[str, PairResult], None] | None = None
) -> EvalReport:
    """Loads the grid, evaluates the models and writes the table, sheet and JSON."""
    grid = load_grid(
        options.data_dir,
        contents=options.contents,
        styles=options.styles,
        seed=options.seed,
        side=options.side,
    )
    models = registered_models(options.models, runtime=options.runtime, device=options.device)
    report = evaluate(
        grid,
        models,
        meter=QualityMeter(side=options.side),
        judge=lite1_meter(side=options.side, device=options.device) if options.judge else None,
        on_result=on_result,
    )
    if options.sheet is not None:
        write_contact_sheet(report, options.sheet, cell=options.cell)
    write_markdown(report, options.table, command=options.command, sheet=options.sheet)
    if options.results_json is not None:
        write_json(report, options.results_json)
    return report
