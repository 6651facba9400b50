"""`gouache stylize | batch | token`: the public REST API from a terminal, with an API key
(`gouache projects` is in project_commands)."""

from __future__ import annotations

import argparse
import json
import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from gouache.cli.output import console


def parse_weights(text: str) -> list[float]:
    """--weights checked before anything is uploaded; argparse reports the error."""
    try:
        return [float(weight) for weight in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give numbers separated by commas, one per style, e.g. 0.7,0.3"
        ) from None


def api_credentials(args: argparse.Namespace) -> tuple[str, str]:
    base_url = args.url or os.environ.get("GOUACHE_URL")
    api_key = args.api_key or os.environ.get("GOUACHE_API_KEY")
    saved = Path(args.state_dir) / "credentials.json"
    if (not api_key or not base_url) and saved.exists():
        try:
            stored = json.loads(saved.read_text())
            api_key = api_key or str(stored["api_key"])
            base_url = base_url or str(stored["base_url"])
        except (ValueError, KeyError, TypeError) as exc:
            raise SystemExit(
                f"{saved} is not the credentials `gouache up` writes ({exc}); "
                "run `gouache up` again or pass --url and --api-key"
            ) from None
    if not api_key:
        raise SystemExit(
            "no API key: pass --api-key, set GOUACHE_API_KEY, or run `gouache up` first"
        )
    return base_url or "http://127.0.0.1:8080", api_key


def job_params(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if args.alpha is not None:
        params["alpha"] = args.alpha
    if args.weights:
        params["weights"] = args.weights
    if args.seed is not None:
        params["seed"] = args.seed
    if args.luminance_only:
        params["luminance_only"] = True
    if args.histogram_match:
        params["histogram_match"] = True
    if args.tile_size is not None:
        params["tile_size"] = args.tile_size
    suffix = Path(args.output).suffix.lower()
    params["output_format"] = {".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}.get(suffix, "png")
    return params


def stylize(
    base_url: str,
    api_key: str,
    content: str,
    styles: Sequence[str],
    output: Path,
    *,
    model: str,
    params: Mapping[str, Any],
    max_side: int | None,
    timeout_s: float,
    no_cache: bool = False,
) -> dict[str, Any]:
    """Uploads the images, runs one job through the public API, and writes the result.

    A request the user ran before is answered from the result cache unless no_cache.
    """
    from gouache.cli.images import load_image_argument
    from gouache.client import GouacheClient

    with GouacheClient(base_url, api_key) as client:
        name, data = load_image_argument(content, max_side=max_side)
        content_url = client.upload(data, filename=name)
        style_urls = []
        for style in styles:
            if style.startswith(("http://", "https://")):
                style_urls.append(style)
                continue
            style_name, style_data = load_image_argument(style, max_side=max_side)
            style_urls.append(client.upload(style_data, filename=style_name, kind="style"))
        created = client.create_job(
            content_url,
            style_urls,
            model_version=model,
            params=params,
            idempotency_key=uuid.uuid4().hex,
            no_cache=no_cache,
        )
        job_id = created["job_id"]
        cached = " from the result cache" if created.get("cached") else ""
        console.print(f"job [bold]{job_id}[/bold] created ({created.get('model_version')}){cached}")
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("pending", total=1.0)

            def update(job: Mapping[str, Any]) -> None:
                progress.update(
                    task,
                    completed=float(job.get("progress", 0.0)),
                    description=str(job.get("status")),
                )

            result = client.wait(job_id, timeout_s=timeout_s, on_update=update)
        if result.status != "succeeded" or not result.result_url:
            raise SystemExit(f"job {job_id} {result.status}: {result.error or 'no result'}")
        output.write_bytes(client.download(result.result_url))
        summary = {
            "job_id": job_id,
            "model_version": result.model_version,
            "latency_ms": result.latency_ms,
            "output": str(output),
        }
        console.print(
            f"[green]✓[/green] {output}  job {job_id}  model {result.model_version}  latency {result.latency_ms} ms"
        )
        return summary


def cmd_stylize(args: argparse.Namespace) -> int:
    base_url, api_key = api_credentials(args)
    summary = stylize(
        base_url,
        api_key,
        args.content,
        args.style,
        Path(args.output),
        model=args.model,
        params=job_params(args),
        max_side=args.max_side,
        timeout_s=args.timeout,
        no_cache=args.no_cache,
    )
    print(json.dumps(summary))
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    from gouache.cli.batch import run_batch

    base_url, api_key = api_credentials(args)
    directory = Path(args.directory)
    summary = run_batch(
        base_url,
        api_key,
        directory,
        args.style or [],
        Path(args.output or f"{directory.resolve()}-stylized"),
        model=args.model,
        params=job_params(args),
        lane=args.lane,
        max_side=args.max_side,
        timeout_s=args.timeout,
        no_cache=args.no_cache,
        console=console,
    )
    print(json.dumps(summary))
    return 0 if summary["status"] == "succeeded" else 1


def cmd_token(args: argparse.Namespace) -> int:
    from gouache.client import GouacheClient

    base_url, api_key = api_credentials(args)
    with GouacheClient(base_url, api_key, project=getattr(args, "project", "")) as client:
        print(client.token())
    return 0
