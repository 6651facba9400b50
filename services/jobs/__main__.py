"""Runs the jobs service: `python -m services.jobs` (GOUACHE_JOBS_* settings); `migrate`."""

from __future__ import annotations

import argparse
import asyncio
import sys

from gouache.db.migrate import add_migrate_command, run_migrate_command
from gouache.runtime.logging import configure_logging
from gouache.runtime.server import serve
from gouache.runtime.tracing import configure_tracing
from gouache.secretbox import SecretBoxError
from services.jobs.server import build
from services.jobs.settings import JobsSettings
from services.jobs.store import JobStore


async def _main(settings: JobsSettings) -> None:
    service = await build(settings)
    await serve(settings, service.spec, service.verifier)


def main(argv: list[str] | None = None) -> int:
    """Reads settings once, configures logs and traces, and serves until SIGTERM or migrates."""
    parser = argparse.ArgumentParser(
        prog="python -m services.jobs",
        description="The gouache jobs service. Without a command it serves gRPC.",
    )
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="serve gRPC (the default)")
    add_migrate_command(commands)
    args = parser.parse_args(argv)
    settings = JobsSettings()
    serving = args.command in (None, "serve")
    configure_logging("jobs", level=settings.log_level, json_output=settings.log_json and serving)
    if args.command == "migrate":
        return run_migrate_command(args, settings.database_url, JobStore.migrations)
    try:
        settings.secret_box()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_tracing("jobs", console=settings.otel_console)
    try:
        asyncio.run(_main(settings))
    except SecretBoxError as exc:
        print(f"error: webhook secrets: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
