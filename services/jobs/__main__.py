"""Runs the jobs service: `python -m services.jobs` (GOUACHE_JOBS_* settings)."""

from __future__ import annotations

import asyncio

from gouache.runtime.logging import configure_logging
from gouache.runtime.server import serve
from gouache.runtime.tracing import configure_tracing
from services.jobs.server import build
from services.jobs.settings import JobsSettings


async def _main(settings: JobsSettings) -> None:
    service = await build(settings)
    await serve(settings, service.spec, service.verifier)


def main() -> None:
    """Reads settings once, configures logs and traces, and serves until SIGTERM."""
    settings = JobsSettings()
    configure_logging("jobs", level=settings.log_level, json_output=settings.log_json)
    configure_tracing("jobs", console=settings.otel_console)
    asyncio.run(_main(settings))


if __name__ == "__main__":
    main()
