"""`gouache train | eval`: training a family's network and the evaluation grid."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gouache.cli.output import console


def cmd_train(args: argparse.Namespace) -> int:
    """Trains a family's network from image directories and exports it with a manifest."""
    import importlib

    trainer = importlib.import_module(f"gouache.nst.training.{args.family}")
    exported = trainer.train(
        Path(args.config),
        Path(args.content_dir),
        Path(args.style_dir),
        Path(args.out),
        resume=args.resume,
        max_minutes=args.max_minutes,
    )
    console.print(f"[green]✓[/green] weights exported to {exported}")
    print(json.dumps({"family": args.family, "exported": str(exported)}))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Stylizes the fixed evaluation grid with each model; writes the table and sheet."""
    import shlex

    import torch

    from gouache.nst import registry
    from gouache.nst.eval_grid import GRID_CONTENTS, GRID_STYLES
    from gouache.nst.eval_report import PairResult
    from gouache.nst.evaluate import EvalOptions, run

    if args.threads:
        torch.set_num_threads(args.threads)
    names = (
        tuple(n.strip() for n in args.models.split(",") if n.strip())
        if args.models
        else tuple(spec.name for spec in registry.all_models())
    )
    options = EvalOptions(
        models=names,
        data_dir=Path(args.data_dir) if args.data_dir else None,
        contents=GRID_CONTENTS if args.contents is None else args.contents,
        styles=GRID_STYLES if args.styles is None else args.styles,
        seed=args.seed,
        side=args.side,
        runtime=args.runtime,
        table=Path(args.table),
        sheet=Path(args.sheet) if args.sheet else None,
        results_json=Path(args.json) if args.json else None,
        command=" ".join(["gouache", *map(shlex.quote, sys.argv[1:])]),
        judge=args.judge == "lite1",
    )

    def progress(model: str, result: PairResult) -> None:
        judged = (
            f"(lite1 {result.judge_style:.3f} / {result.judge_content:.3f})  "
            if result.judge_style is not None and result.judge_content is not None
            else ""
        )
        console.print(
            f"  {model:<24} {result.content:<22} x {result.style:<32} "
            f"style {result.style_distance:.3f}  content {result.content_distance:.3f}  "
            f"{judged}{result.seconds:.2f} s",
            soft_wrap=True,
        )

    report = run(options, on_result=progress)
    for row in report.summaries():
        judged = (
            f"; lite1 style {row.judge_style:.3f} ({row.judge_style_ratio:.2f}x), "
            f"content {row.judge_content:.3f} ({row.judge_content_ratio:.2f}x)"
            if row.judge_style is not None
            and row.judge_content is not None
            and row.judge_style_ratio is not None
            and row.judge_content_ratio is not None
            else ""
        )
        console.print(
            f"[bold]{row.name}[/bold]: style {row.median_style:.3f} ({row.style_ratio:.2f}x "
            f"baseline), content {row.median_content:.3f} ({row.content_ratio:.2f}x)"
            f"{judged}, {row.median_seconds:.2f} s per image",
            soft_wrap=True,
        )
    console.print(
        f"[green]✓[/green] {options.table}" + (f", {options.sheet}" if options.sheet else "")
    )
    return 0
