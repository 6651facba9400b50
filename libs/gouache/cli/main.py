"""`gouache up | stylize | batch | demo | token | train | eval`: the embedded mesh and the
public API from a terminal (the commands' parser and `up`, `demo`; api_commands.py and
ml_commands.py hold the others)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gouache.cli import compliance_commands, plan_commands, project_commands
from gouache.cli.api_commands import (
    cmd_batch,
    cmd_stylize,
    cmd_token,
    job_params,
    parse_weights,
    stylize,
)
from gouache.cli.defaults import DEFAULT_MODELS
from gouache.cli.ml_commands import cmd_eval, cmd_train
from gouache.cli.output import console
from gouache.ratelimit.plans import parse_plans

DEFAULT_STATE = Path(".gouache")
# Commands that call the API: whatever stops them is one `error: ...` line (cli/errors.py).
API_COMMANDS = (
    "stylize",
    "batch",
    "demo",
    "token",
    "projects",
    plan_commands.COMMAND,
    *compliance_commands.COMMANDS,
)


def _report(component: Any) -> None:
    console.print(f"  [green]✓[/green] {component.name:<10} {component.address}")


def _mesh_config(args: argparse.Namespace, *, ephemeral: bool = False) -> Any:
    from gouache.cli.mesh import Backend, MeshConfig, MeshPorts

    ports = MeshPorts.ephemeral() if ephemeral else MeshPorts.from_base(args.grpc_base_port)
    if not ephemeral:
        ports.envoy = args.port
        ports.nats = args.nats_port
        ports.envoy_admin = args.admin_port
        ports.storage_http = args.files_port
    backend: Backend = "postgres" if getattr(args, "backend", "local") == "postgres" else "local"
    if backend == "postgres":
        ports.postgres = args.postgres_port
        ports.minio = args.minio_port
        if getattr(args, "blob_store", "local") == "s3":
            raise SystemExit(
                "gouache up: --backend postgres keeps images in its own MinIO; "
                "leave out --blob-store s3 (or use --backend local with it)"
            )
    config = MeshConfig(
        state_dir=Path(args.state_dir).resolve(),
        ports=ports,
        models=args.models,
        styles_dir=Path(args.styles).resolve() if getattr(args, "styles", None) else None,
        backend=backend,
        rate_limit_plans=getattr(args, "rate_limit_plans", "") or "",
        extra_env=blob_store_env(args, os.environ),
    )
    studio = _studio_dir(args)
    if studio is not None:
        config.studio_dir = studio
    return config


def _studio_dir(args: argparse.Namespace) -> Path | None:
    """`--studio-dir DIR`: a built studio elsewhere (MeshConfig finds the packaged one)."""
    directory = getattr(args, "studio_dir", None)
    if directory is None:
        return None
    path = Path(directory).resolve()
    if not (path / "index.html").is_file():
        raise SystemExit(
            f"gouache up: --studio-dir {directory} holds no index.html; build the studio "
            "with `bash scripts/build-studio.sh` (it writes libs/gouache/edge/studio_dist)"
        )
    return path


S3_KEY_VARIABLES = ("GOUACHE_STORAGE_S3_ACCESS_KEY", "GOUACHE_STORAGE_S3_SECRET_KEY")


def blob_store_env(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, str]:
    """Storage's object-store settings for `gouache up --blob-store s3 ...` (none for local).

    The keys stay out of the command line (and `ps`): storage reads them from
    GOUACHE_STORAGE_S3_ACCESS_KEY and GOUACHE_STORAGE_S3_SECRET_KEY, which it inherits.
    """
    if getattr(args, "blob_store", "local") != "s3":
        return {}
    missing = [
        *(["--s3-endpoint"] if not args.s3_endpoint else []),
        *(["--s3-bucket"] if not args.s3_bucket else []),
        *(name for name in S3_KEY_VARIABLES if not environ.get(name)),
    ]
    if missing:
        raise SystemExit(f"gouache up: --blob-store s3 needs {', '.join(missing)}")
    return {
        "GOUACHE_STORAGE_BLOB_BACKEND": "s3",
        "GOUACHE_STORAGE_S3_ENDPOINT": args.s3_endpoint,
        "GOUACHE_STORAGE_S3_BUCKET": args.s3_bucket,
        "GOUACHE_STORAGE_S3_SECURE": "false" if args.s3_insecure else "true",
        "GOUACHE_STORAGE_S3_CREATE_BUCKET": "true" if args.s3_create_bucket else "false",
    }


_EVENT_COLORS = {"Crashed": "yellow", "Recovered": "green", "GaveUp": "red"}


def _supervision_line(event: Any) -> None:
    color = _EVENT_COLORS[type(event).__name__]
    console.print(f"  [{color}]{event.line()}[/{color}]", highlight=False, soft_wrap=True)


def cmd_up(args: argparse.Namespace) -> int:
    """Starts the mesh, restarts components that crash, and runs until Ctrl-C or SIGTERM."""
    from gouache.cli.mesh import BackendUnavailable, Mesh, PortsTaken
    from gouache.cli.supervision import RestartPolicy
    from gouache.cli.supervisor import Supervisor

    stop_requested: list[int] = []

    def request_stop(signum: int, _frame: object) -> None:
        stop_requested.append(signum)

    # Explicit handlers, installed before anything starts: a mesh run in the background
    # (where SIGINT is ignored) or by a supervisor (SIGTERM) still stops every component.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, request_stop)
    try:
        policy = RestartPolicy(max_restarts=args.max_restarts, window_s=args.restart_window)
    except ValueError as exc:
        raise SystemExit(f"gouache up: {exc}") from exc
    mesh = Mesh(_mesh_config(args), report=_report)
    try:
        mesh.check_backend()
    except BackendUnavailable as exc:
        console.print(f"[red]✗ {exc}[/red]", highlight=False, soft_wrap=True)
        console.print("nothing started")
        return 2
    try:
        mesh.check_ports()
    except (PortsTaken, ValueError) as exc:
        problems = [t.describe() for t in exc.taken] if isinstance(exc, PortsTaken) else [str(exc)]
        for problem in problems:
            console.print(f"[red]✗ {problem}[/red]", highlight=False, soft_wrap=True)
        console.print("nothing started: free the ports or choose others (gouache up --help)")
        return 2
    console.print(f"[bold]gouache[/bold]: starting the embedded mesh in {mesh.config.state_dir}")
    try:
        try:
            credentials = mesh.start()
        except RuntimeError as exc:
            # A component that could not start says why in one line, its log named.
            console.print(f"[red]✗ {exc}[/red]", highlight=False, soft_wrap=True)
            return 1
        console.print(f"\n[bold green]ready[/bold green]: REST API at {mesh.config.public_url}")
        if mesh.config.studio_dir is not None:
            console.print(f"  gouache studio (web app): {mesh.config.public_url}/")
        else:
            console.print(
                "  gouache studio is not built: `bash scripts/setup.sh` (needs npm) builds it; "
                f"{mesh.config.public_url}/ says how",
                highlight=False,
                soft_wrap=True,
            )
        console.print(
            f"  admin API key: {credentials.admin_api_key}  "
            f"(also in {mesh.config.state_dir}/credentials.json)"
        )
        console.print(
            f"  token: curl -s -X POST {mesh.config.public_url}/v1/auth/token "
            "-H 'content-type: application/json' "
            f'-d \'{{"grant_type":"client_credentials","api_key":"{credentials.admin_api_key}"}}\''
        )
        console.print(f"  operator API key and addresses: {mesh.config.state_dir}/operator.json")
        if mesh.postgres is not None:
            console.print(
                f"  PostgreSQL {mesh.postgres.address} and MinIO bucket gouache: their "
                f"password and keys are in {mesh.config.state_dir}/secrets.json",
                highlight=False,
                soft_wrap=True,
            )
        console.print("  Crashed components restart on their own. Ctrl-C stops everything.")
        supervisor = Supervisor(mesh, policy, _supervision_line)
        while not stop_requested:
            if supervisor.tick() is not None:
                return 1
            time.sleep(0.2)
        console.print("\nstopping…")
        return 0
    finally:
        mesh.stop()
        console.print("stopped.")


def _rate_limit_plans(text: str) -> str:
    """--rate-limit-plans checked before anything starts; argparse reports the ValueError.
    Empty (the default) leaves the services' own default plans."""
    if not text:
        return text
    try:
        parse_plans(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def cmd_demo(args: argparse.Namespace) -> int:
    """Starts a private mesh on free ports, stylizes a bundled image through it, stops it."""
    from gouache.cli.mesh import Mesh

    mesh = Mesh(_mesh_config(args, ephemeral=True), report=_report)
    console.print(
        "[bold]gouache demo[/bold]: starting the embedded mesh (NATS, six services, Envoy)…"
    )
    try:
        credentials = mesh.start()
        summary = stylize(
            mesh.config.public_url,
            credentials.admin_api_key,
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
    finally:
        mesh.stop()


def _add_job_options(parser: argparse.ArgumentParser, *, default_model: str) -> None:
    parser.add_argument(
        "--style",
        action="append",
        default=None,
        help="style image: a path, skimage:NAME or a file URL (repeat for 2-4 styles)",
    )
    parser.add_argument(
        "--weights", type=parse_weights, help="comma-separated weights, one per style, e.g. 0.7,0.3"
    )
    parser.add_argument("--alpha", type=float, help="style strength 0-1")
    parser.add_argument("--model", default=default_model, help="model alias or version")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--luminance-only", action="store_true")
    parser.add_argument("--histogram-match", action="store_true")
    parser.add_argument("--tile-size", type=int)
    parser.add_argument(
        "--max-side",
        type=int,
        default=None,
        help="downscale inputs to this long side before upload",
    )
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="run the model even if this exact request was answered before (result cache)",
    )
    parser.add_argument("-o", "--output", default="stylized.png")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gouache", description=__doc__)
    parser.add_argument(
        "--state-dir", default=str(DEFAULT_STATE), help="where the embedded mesh keeps its data"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run the embedded mesh until Ctrl-C")
    up.add_argument("--port", type=int, default=8080, help="REST port (Envoy)")
    up.add_argument("--nats-port", type=int, default=4222)
    up.add_argument("--admin-port", type=int, default=9901, help="Envoy admin port")
    up.add_argument("--files-port", type=int, default=8081, help="storage's signed-URL HTTP port")
    up.add_argument(
        "--grpc-base-port",
        type=int,
        default=50051,
        help="services listen on this port and the next five; metrics on base+100..",
    )
    up.add_argument(
        "--models", default=DEFAULT_MODELS, help="model versions inference loads (comma-separated)"
    )
    up.add_argument(
        "--styles",
        help="directory of more curated style images (with manifest.json) to import, "
        "beside the eight the package ships",
    )
    up.add_argument(
        "--studio-dir",
        metavar="DIR",
        help="a built gouache studio to serve at / (default: the one built into the package)",
    )
    up.add_argument(
        "--rate-limit-plans",
        default="",
        type=_rate_limit_plans,
        metavar="JSON",
        help='rate limits per plan, e.g. \'{"free":{"per_minute":600,"burst":100}}\' '
        "(default: free 60 per minute with bursts of 20)",
    )
    up.add_argument(
        "--max-restarts",
        type=int,
        default=5,
        metavar="N",
        help="a component that crashes more than N times within --restart-window seconds is "
        "crash-looping: the mesh stops (exit 1). Restarts wait 0.5 s, doubling to 30 s",
    )
    up.add_argument("--restart-window", type=float, default=300.0, metavar="SECONDS")
    blobs = up.add_argument_group(
        "object store",
        "where storage keeps images: files under the state directory (local), or a bucket on "
        "S3 or MinIO (s3; keys from GOUACHE_STORAGE_S3_ACCESS_KEY and _SECRET_KEY)",
    )
    blobs.add_argument("--blob-store", choices=("local", "s3"), default="local")
    blobs.add_argument("--s3-endpoint", metavar="HOST:PORT", help="the S3 API, e.g. 127.0.0.1:9000")
    blobs.add_argument("--s3-bucket", metavar="NAME")
    blobs.add_argument("--s3-insecure", action="store_true", help="plain http instead of https")
    blobs.add_argument(
        "--s3-create-bucket", action="store_true", help="create the bucket if it is missing"
    )
    backend = up.add_argument_group(
        "backend",
        "where the services keep rows and images: SQLite files and a directory under the "
        "state directory (local), or a PostgreSQL cluster and a MinIO bucket that gouache up "
        "starts and supervises itself, with their data under the state directory (postgres)",
    )
    backend.add_argument("--backend", choices=("local", "postgres"), default="local")
    backend.add_argument(
        "--postgres-port", type=int, default=0, metavar="N", help="default: a free port"
    )
    backend.add_argument(
        "--minio-port", type=int, default=0, metavar="N", help="default: a free port"
    )
    up.set_defaults(func=cmd_up)

    stylize_parser = sub.add_parser("stylize", help="stylize an image through the public API")
    stylize_parser.add_argument("content", help="content image: a path or skimage:NAME")
    stylize_parser.add_argument("--url", help="REST base URL (default from `gouache up`)")
    stylize_parser.add_argument("--api-key")
    _add_job_options(stylize_parser, default_model="default")
    stylize_parser.set_defaults(func=cmd_stylize)

    batch_parser = sub.add_parser(
        "batch", help="stylize every image of a directory as one batch (-o: output directory)"
    )
    batch_parser.add_argument("directory", help="directory of .png/.jpg/.jpeg/.webp images")
    batch_parser.add_argument("--url", help="REST base URL (default from `gouache up`)")
    batch_parser.add_argument("--api-key")
    batch_parser.add_argument("--lane", default="export", choices=("export", "preview"))
    _add_job_options(batch_parser, default_model="default")
    # -o names a directory here (default: DIRECTORY-stylized); results are PNG.
    batch_parser.set_defaults(func=cmd_batch, output="", timeout=24 * 3600.0)

    demo = sub.add_parser("demo", help="start a mesh, stylize a bundled image, stop")
    demo.add_argument("--content", default="skimage:astronaut")
    demo.add_argument("--models", default="gatys.lite0-fast")
    _add_job_options(demo, default_model="gatys-fast")
    demo.set_defaults(func=cmd_demo, max_side=256)

    token = sub.add_parser("token", help="print an access token for an API key")
    token.add_argument("--url")
    token.add_argument("--api-key")
    token.add_argument("--project", default="", help="a shared project the token acts in")
    token.set_defaults(func=cmd_token)
    project_commands.add_parser(sub)
    plan_commands.add_parser(sub)
    compliance_commands.add_parsers(sub)

    train = sub.add_parser("train", help="train a family's network and export its weights")
    train.add_argument(
        "family", choices=("adain", "feedforward", "wct"), help="which network to train"
    )
    train.add_argument("--content-dir", required=True, help="directory of content photos")
    train.add_argument("--style-dir", required=True, help="directory of style images")
    train.add_argument("--config", required=True, help="training config (YAML)")
    train.add_argument(
        "--out", required=True, help="run directory: checkpoints, run log, exported weights"
    )
    train.add_argument(
        "--resume", action="store_true", help="continue from the checkpoint in --out"
    )
    train.add_argument(
        "--max-minutes", type=float, default=None, help="stop (and export) after this long"
    )
    train.set_defaults(func=cmd_train)

    evaluation = sub.add_parser(
        "eval", help="stylize the fixed evaluation grid with each model; write table and sheet"
    )
    evaluation.add_argument(
        "--models", help="comma-separated registered models (default: every registered model)"
    )
    evaluation.add_argument(
        "--data-dir",
        default="../shared/data",
        help="corpus with manifest.json; scikit-image samples when absent or empty",
    )
    evaluation.add_argument(
        "--contents",
        type=int,
        help="contents drawn from the corpus (default: every held-out photo with clear rights)",
    )
    evaluation.add_argument(
        "--styles", type=int, help="styles drawn from the corpus (default: the evaluation grid's)"
    )
    evaluation.add_argument("--seed", type=int, default=0, help="seed of the corpus draw")
    evaluation.add_argument("--side", type=int, default=256, help="long side of every image")
    evaluation.add_argument("--runtime", choices=("torch", "onnx"), default="torch")
    evaluation.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    evaluation.add_argument("--table", default="docs/quality.md")
    evaluation.add_argument(
        "--sheet", default="docs/quality/contact_sheet.jpg", help="contact sheet (.jpg or .png)"
    )
    evaluation.add_argument("--json", default="docs/quality/results.json")
    evaluation.add_argument(
        "--judge",
        choices=("lite1", "none"),
        default="lite1",
        help="also measure with a network no model trains on (EfficientNet-Lite1)",
    )
    evaluation.set_defaults(func=cmd_eval)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from gouache.runtime.logging import configure_logging

    configure_logging("cli", level="WARNING", json_output=False)
    args = build_parser().parse_args(argv)
    if getattr(args, "style", None) is None and args.command in ("stylize", "demo", "batch"):
        args.style = ["skimage:immunohistochemistry"] if args.command == "demo" else None
        if args.style is None:
            raise SystemExit("give at least one --style")
    if args.command in API_COMMANDS:
        from gouache.cli.errors import run_reporting_errors

        return run_reporting_errors(args.func, args, console)
    if args.command not in ("train", "eval"):
        result: int = args.func(args)
        return result
    from rich.markup import escape

    from gouache.nst.encoders.lite0 import WeightsIntegrityError
    from gouache.nst.training.trainer import TrainingError

    try:
        result = args.func(args)
    except (ValueError, KeyError, OSError, TrainingError, WeightsIntegrityError) as exc:
        # Bad configs, unknown models, missing or damaged files: the message says which.
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        console.print(f"[red]error:[/red] {escape(str(message))}", highlight=False, soft_wrap=True)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
