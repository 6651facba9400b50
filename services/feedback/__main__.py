"""`python -m services.feedback`: serves FeedbackService and consumes job outcomes; `migrate`."""

from __future__ import annotations

import argparse
import asyncio
import sys

from gouache.db.migrate import add_migrate_command, run_migrate_command
from gouache.runtime.logging import configure_logging
from gouache.runtime.server import serve
from gouache.runtime.tracing import configure_tracing
from services.feedback.server import build
from services.feedback.settings import FeedbackSettings
from services.feedback.store import FeedbackDatabase


async def _serve(settings: FeedbackSettings) -> None:
    spec, verifier = await build(settings)
    await serve(settings, spec, verifier)


def main(argv: list[str] | None = None) -> int:
    """Reads settings from GOUACHE_FEEDBACK_* variables and serves until SIGTERM, or migrates."""
    parser = argparse.ArgumentParser(
        prog="python -m services.feedback",
        description="The gouache feedback service. Without a command it serves gRPC.",
    )
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="serve gRPC (the default)")
    add_migrate_command(commands)
    args = parser.parse_args(argv)
    settings = FeedbackSettings()
    serving = args.command in (None, "serve")
    configure_logging(
        "feedback", level=settings.log_level, json_output=settings.log_json and serving
    )
    if args.command == "migrate":
        return run_migrate_command(args, settings.database_url, FeedbackDatabase.migrations)
    configure_tracing("feedback", console=settings.otel_console)
    asyncio.run(_serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
