"""The evaluation grid, its table, JSON and contact sheet, and the `gouache eval` command."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gouache.cli.main import build_parser
from gouache.nst.base import RGBImage, StylizeControls
from gouache.nst.encoders import Lite0Encoder
from gouache.nst.eval_grid import (
    DEFAULT_DATA_DIR,
    GRID_CONTENTS,
    GRID_STYLES,
    REDISTRIBUTABLE_CONTENT_RIGHTS,
    REDISTRIBUTABLE_STYLE_RIGHTS,
    EvalGrid,
    EvalImage,
    ShippedConstraints,
    corpus_grid,
    load_grid,
    shipped_constraints,
)
from gouache.nst.eval_report import (
    IDENTITY_NAME,
    EvalReport,
    ModelUnderTest,
    contact_sheet,
    markdown_table,
    write_contact_sheet,
    write_json,
    write_markdown,
)
from gouache.nst.evaluate import evaluate
from gouache.nst.quality import BASELINE_NAME, QualityMeter, lite1_meter
from gouache.runtime.errors import InvalidArgument


class _Inverter:
    """A stand-in model: the negative of the content (far from everything)."""

    name = "inverter"

    def stylize(
        self,
        content: RGBImage,
        styles: Sequence[RGBImage],
        weights: Sequence[float],
        controls: StylizeControls,
        *,
        style_keys: Sequence[str] | None = None,
    ) -> RGBImage:
        inverted: RGBImage = 255 - content
        return inverted


class _Refuser(_Inverter):
    """A stand-in for a model limited to trained styles: refuses every style."""

    name = "refuser"

    def stylize(
        self,
        content: RGBImage,
        styles: Sequence[RGBImage],
        weights: Sequence[float],
        controls: StylizeControls,
        *,
        style_keys: Sequence[str] | None = None,
    ) -> RGBImage:
        raise InvalidArgument("not a trained style", field="styles[0]")


@pytest.fixture(scope="module")
def grid(astronaut: np.ndarray, chelsea: np.ndarray, stripes: np.ndarray) -> EvalGrid:
    return EvalGrid(
        contents=(EvalImage("astronaut", astronaut), EvalImage("chelsea", chelsea)),
        styles=(EvalImage("stripes", stripes),),
        source="test images",
    )


@pytest.fixture(scope="module")
def report(grid: EvalGrid, encoder: Lite0Encoder) -> EvalReport:
    models = [
        ModelUnderTest("inverter", "test", "numpy", _Inverter),
        ModelUnderTest("refuser", "test", "numpy", _Refuser),
    ]
    return evaluate(grid, models, meter=QualityMeter(encoder, side=64))


def test_every_model_and_the_references_are_measured_on_every_pair(report: EvalReport) -> None:
    assert list(report.results) == [IDENTITY_NAME, BASELINE_NAME, "inverter"]
    assert all(len(rows) == 2 for rows in report.results.values())
    identity = report.summaries()[0]
    assert identity.median_content == 0.0
    assert report.skipped == {"refuser": "not a trained style"}


def test_ratios_are_medians_over_the_baseline_medians(report: EvalReport) -> None:
    rows = {row.name: row for row in report.summaries()}
    baseline = rows[BASELINE_NAME]
    assert baseline.style_ratio == pytest.approx(1.0)
    inverter = rows["inverter"]
    assert inverter.style_ratio == pytest.approx(inverter.median_style / baseline.median_style)
    assert "| inverter | test | numpy | 2 |" in markdown_table(report)


def test_the_contact_sheet_has_a_row_per_pair_and_a_column_per_image(report: EvalReport) -> None:
    sheet = contact_sheet(report, cell=64)
    # content, style, baseline, inverter; the identity has no column of its own.
    assert sheet.width == 4 * 64
    assert sheet.height == 22 + 2 * (64 + 18)


def test_markdown_json_and_jpeg_are_written(report: EvalReport, tmp_path: Path) -> None:
    sheet = tmp_path / "quality" / "sheet.jpg"
    write_contact_sheet(report, sheet, cell=64)
    assert Image.open(sheet).format == "JPEG"
    table = tmp_path / "quality.md"
    write_markdown(report, table, command="gouache eval --test", sheet=sheet)
    text = table.read_text()
    assert "gouache eval --test" in text
    assert "![contact sheet](quality/sheet.jpg)" in text
    assert "refuser: not a trained style" in text
    write_json(report, tmp_path / "results.json")
    payload = json.loads((tmp_path / "results.json").read_text())
    assert [s["model"] for s in payload["summaries"]][-1] == "inverter"


def test_without_the_corpus_the_skimage_grid_is_used(tmp_path: Path) -> None:
    grid = load_grid(tmp_path / "absent", side=48)
    assert [c.name for c in grid.contents] == ["astronaut", "chelsea", "coffee", "rocket"]
    assert all(max(image.pixels.shape[:2]) == 48 for image in (*grid.contents, *grid.styles))


def _corpus(tmp_path: Path) -> Path:
    entries: list[dict[str, object]] = []
    for kind, name, rights, person in [
        ("content", "held1.png", "CC (exact licence unverified)", False),
        ("content", "held2.png", "public domain", False),
        ("content", "held3.png", "public domain", True),
        ("content", "trained.png", "public domain", False),
        ("content", "held4.png", "unknown", False),
        (
            "content",
            "held5.png",
            "research test set (Kodak: released for unrestricted usage)",
            False,
        ),
        ("content", "held6.png", "research test set", False),
        ("content", "held7.png", "public domain (US government / Highsmith; verify)", False),
        ("style", "paint1.png", "public domain", False),
        ("style", "paint2.png", "public domain", False),
        ("style", "paint3.png", "public domain (US only)", False),
        ("style", "other.png", "public domain", False),
    ]:
        folder = tmp_path / ("content" if kind == "content" else "styles")
        folder.mkdir(exist_ok=True)
        pixels = np.full((40, 60, 3), len(entries) * 20, dtype=np.uint8)
        Image.fromarray(pixels).save(folder / name)
        entries.append(
            {
                "file": f"{folder.name}/{name}",
                "kind": kind,
                "title": name,
                "rights_category": rights,
                "identifiable_person": person,
                "sha256": f"{len(entries):064x}",
            }
        )
    (tmp_path / "manifest.json").write_text(json.dumps(entries))
    return tmp_path


def test_the_corpus_draw_keeps_to_held_out_redistributable_contents_and_paintable_styles(
    tmp_path: Path,
) -> None:
    data = _corpus(tmp_path)
    held = {f"held{n}.png" for n in range(1, 8)}
    limits = ShippedConstraints(
        held_out_contents=frozenset(held),
        paintable_styles=frozenset({"paint1.png", "paint2.png", "paint3.png"}),
    )
    grid = corpus_grid(data, contents=3, styles=2, seed=3, side=32, constraints=limits)
    # Unverified CC, unclear research-set rights, unknown rights, a person, trained on: out.
    assert [c.name for c in grid.contents] == ["held2", "held5", "held7"]
    # Public domain in the US only is not enough for a committed sheet.
    assert [s.name for s in grid.styles] == ["paint1", "paint2"]
    assert grid.styles[0].key == f"{8:064x}"
    assert "released for unrestricted usage" in grid.contents[1].credit
    again = corpus_grid(data, contents=3, styles=2, seed=3, side=32, constraints=limits)
    assert [c.key for c in again.contents] == [c.key for c in grid.contents]
    with pytest.raises(ValueError, match="3 usable content"):
        corpus_grid(data, contents=4, styles=2, seed=3, side=32, constraints=limits)
    with pytest.raises(ValueError, match="2 usable style"):
        corpus_grid(data, contents=2, styles=3, seed=3, side=32, constraints=limits)


def test_the_shared_corpus_grid_shows_only_redistributable_held_out_images() -> None:
    data = Path(__file__).resolve().parents[3] / DEFAULT_DATA_DIR
    if not (data / "manifest.json").is_file():
        pytest.skip("the shared corpus is not next to this checkout")
    entries = {Path(e["file"]).name: e for e in json.loads((data / "manifest.json").read_text())}
    limits = shipped_constraints()
    grid = corpus_grid(data, contents=GRID_CONTENTS, styles=GRID_STYLES, seed=0, side=32)
    for image, kind in [(c, "content") for c in grid.contents] + [
        (s, "style") for s in grid.styles
    ]:
        entry = next(e for name, e in entries.items() if Path(name).stem == image.name)
        assert entry["kind"] == kind
        assert not entry["identifiable_person"]
        rights = str(entry["rights_category"]).lower()
        if kind == "content":
            assert rights in REDISTRIBUTABLE_CONTENT_RIGHTS
            assert limits.held_out_contents is not None
            assert Path(entry["file"]).name in limits.held_out_contents
        else:
            assert rights in REDISTRIBUTABLE_STYLE_RIGHTS


def test_the_eval_command_parses_its_options() -> None:
    args = build_parser().parse_args(
        ["eval", "--models", "adain.lite0-v1", "--runtime", "onnx", "--side", "128"]
    )
    assert (args.models, args.runtime, args.side, args.contents, args.styles) == (
        "adain.lite0-v1",
        "onnx",
        128,
        None,  # the grid's own defaults (GRID_CONTENTS, GRID_STYLES)
        None,
    )


def test_the_independent_judge_measures_every_output_again(
    grid: EvalGrid, encoder: Lite0Encoder, tmp_path: Path
) -> None:
    judge = lite1_meter(side=64)
    judged = evaluate(
        grid,
        [ModelUnderTest("inverter", "test", "numpy", _Inverter)],
        meter=QualityMeter(encoder, side=64),
        judge=judge,
    )
    assert judged.judge == "lite1"
    rows = {row.name: row for row in judged.summaries()}
    assert rows[IDENTITY_NAME].judge_content == 0.0
    assert rows[BASELINE_NAME].judge_style_ratio == pytest.approx(1.0)
    inverter = rows["inverter"]
    assert inverter.judge_style is not None
    assert inverter.judge_style != inverter.median_style
    first = judged.results["inverter"][0]
    _content, style = grid.pairs()[0]
    assert first.judge_style == pytest.approx(judge.style_distance(first.image, style.pixels))
    table = markdown_table(judged)
    assert "Lite1 style / baseline" in table
    assert "beats baseline (Lite0 / Lite1)" in table
    write_json(judged, tmp_path / "results.json")
    payload = json.loads((tmp_path / "results.json").read_text())
    assert payload["judge"] == "lite1"
    assert payload["summaries"][-1]["judge_style_distance"] == pytest.approx(inverter.judge_style)
