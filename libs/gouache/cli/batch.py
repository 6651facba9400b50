"""`gouache batch DIR --style S`: a directory of images stylized as one batch, with progress."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
_EXTENSIONS = {"png": "png", "jpeg": "jpg", "webp": "webp"}


def content_files(directory: Path) -> list[Path]:
    """The images of a directory (not its subdirectories), by name."""
    if not directory.is_dir():
        raise SystemExit(f"{directory} is not a directory")
    files = sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise SystemExit(f"{directory} has no {', '.join(IMAGE_SUFFIXES)} images")
    return files


def run_batch(
    base_url: str,
    api_key: str,
    directory: Path,
    styles: Sequence[str],
    output_dir: Path,
    *,
    model: str,
    params: Mapping[str, Any],
    lane: str,
    max_side: int | None,
    timeout_s: float,
    no_cache: bool,
    console: Console,
) -> dict[str, Any]:
    """Uploads every image of directory, runs them as one batch, and writes the results.

    Results are written as <output_dir>/<image name>.<format>; items that did not succeed
    are listed in the summary with their error.
    """
    from gouache.cli.images import load_image_argument
    from gouache.client import GouacheClient

    files = content_files(directory)
    with GouacheClient(base_url, api_key) as client:
        style_urls = []
        for style in styles:
            if style.startswith(("http://", "https://")):
                style_urls.append(style)
                continue
            style_name, style_data = load_image_argument(style, max_side=max_side)
            style_urls.append(client.upload(style_data, filename=style_name, kind="style"))
        content_urls = []
        for path in files:
            name, data = load_image_argument(str(path), max_side=max_side)
            content_urls.append(client.upload(data, filename=name))
        created = client.create_batch(
            content_urls,
            style_urls,
            model_version=model,
            params=params,
            lane=lane,
            idempotency_key=uuid.uuid4().hex,
            no_cache=no_cache,
        )
        batch_id = str(created["batch_id"])
        console.print(f"batch [bold]{batch_id}[/bold] created: {len(files)} images")
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("running", total=len(files))

            def update(batch: Mapping[str, Any]) -> None:
                counts = batch.get("counts", {})
                done = sum(int(counts.get(s, 0)) for s in ("succeeded", "failed", "canceled"))
                progress.update(task, completed=done, description=str(batch.get("status")))

            finished = client.wait_batch(batch_id, timeout_s=timeout_s, on_update=update)
        output_dir.mkdir(parents=True, exist_ok=True)
        extension = _EXTENSIONS.get(str(params.get("output_format", "png")), "png")
        written: list[str] = []
        failed: list[dict[str, Any]] = []
        for item in client.batch_items(batch_id):
            source = files[int(item.get("index", 0))]
            if item.get("status") == "succeeded" and item.get("result_url"):
                target = output_dir / f"{source.stem}.{extension}"
                target.write_bytes(client.download(str(item["result_url"])))
                written.append(str(target))
            else:
                failed.append(
                    {"file": source.name, "status": item.get("status"), "error": item.get("error")}
                )
    status = str(finished.get("status"))
    colour = "green" if status == "succeeded" else "yellow"
    console.print(f"[{colour}]{status}[/{colour}]: {len(written)} written to {output_dir}")
    return {
        "batch_id": batch_id,
        "status": status,
        "counts": finished.get("counts", {}),
        "written": written,
        "failed": failed,
    }
