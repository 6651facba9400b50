"""`python -m gouache.edge render ...`: writes the edge's Envoy config (the Helm chart's init
container runs it; `gouache up` calls the same renderer in process)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from gouache.edge.config import EdgeConfig, Upstream, UpstreamTls, write
from gouache.edge.studio import default_studio_dir

_UPSTREAMS = ("auth", "storage", "jobs", "feedback", "storage-http")


def _port(value: str) -> int:
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port from 1 to 65535")
    return int(value)


def _upstream(value: str) -> Upstream:
    try:
        return Upstream.parse(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) <= 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive number of bytes")
    return int(value)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m gouache.edge", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)
    render = commands.add_parser("render", help="write the Envoy bootstrap (JSON) to --out")
    render.add_argument("--out", type=Path, required=True, help="file to write")
    render.add_argument("--listen-host", default="127.0.0.1")
    render.add_argument("--listen-port", type=_port, default=8080)
    render.add_argument("--admin-host", default="127.0.0.1")
    render.add_argument("--admin-port", type=_port, default=9901)
    for name in _UPSTREAMS:
        render.add_argument(
            f"--{name}", type=_upstream, required=True, metavar="HOST:PORT", help=f"{name} upstream"
        )
    render.add_argument("--max-upload-bytes", type=_positive, default=None)
    studio = render.add_mutually_exclusive_group()
    studio.add_argument(
        "--studio-dir",
        type=Path,
        metavar="DIR",
        help="a built gouache studio to serve at / (default: the one built into this package)",
    )
    studio.add_argument(
        "--no-studio",
        action="store_true",
        help="serve no studio: / says how to build one",
    )
    tls = render.add_argument_group("TLS on the public port (REST and gRPC, ALPN h2/http1.1)")
    tls.add_argument("--tls-cert", type=Path, metavar="FILE")
    tls.add_argument("--tls-key", type=Path, metavar="FILE")
    mtls = render.add_argument_group("mTLS towards the gRPC upstreams")
    mtls.add_argument("--upstream-ca", type=Path, metavar="FILE")
    mtls.add_argument("--upstream-cert", type=Path, metavar="FILE")
    mtls.add_argument("--upstream-key", type=Path, metavar="FILE")
    return root


def config_from(args: argparse.Namespace) -> EdgeConfig:
    """The EdgeConfig the parsed arguments describe, or ValueError saying what is missing."""
    if (args.tls_cert is None) != (args.tls_key is None):
        raise ValueError("--tls-cert and --tls-key go together")
    upstream_files = (args.upstream_ca, args.upstream_cert, args.upstream_key)
    if any(upstream_files) and not all(upstream_files):
        raise ValueError("--upstream-ca, --upstream-cert and --upstream-key go together")
    upstream_tls = (
        UpstreamTls(args.upstream_ca, args.upstream_cert, args.upstream_key)
        if all(upstream_files)
        else None
    )
    limits = {} if args.max_upload_bytes is None else {"max_upload_bytes": args.max_upload_bytes}
    return EdgeConfig(
        listen_host=args.listen_host,
        listen_port=args.listen_port,
        admin_host=args.admin_host,
        admin_port=args.admin_port,
        auth=args.auth,
        storage=args.storage,
        jobs=args.jobs,
        feedback=args.feedback,
        storage_http=args.storage_http,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        upstream_tls=upstream_tls,
        studio_dir=None if args.no_studio else (args.studio_dir or default_studio_dir()),
        **limits,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        config = config_from(args)
        path = write(config, args.out)
    except (ValueError, OSError) as exc:
        print(f"gouache.edge: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
