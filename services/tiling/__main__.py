"""Runs the tiling worker: `python -m services.tiling` (GOUACHE_TILING_* settings)."""

from __future__ import annotations

import asyncio

from gouache.runtime.logging import configure_logging
from gouache.runtime.server import serve
from gouache.runtime.tracing import configure_tracing
from services.tiling.server import build
from services.tiling.settings import TilingSettings


async def _main(settings: TilingSettings) -> None:
    spec, verifier = await build(settings)
    await serve(settings, spec, verifier)


def main() -> None:
    """Reads settings once, configures logs and traces, and serves until SIGTERM."""
    settings = TilingSettings()
    configure_logging("tiling", level=settings.log_level, json_output=settings.log_json)
    configure_tracing("tiling", console=settings.otel_console)
    asyncio.run(_main(settings))


if __name__ == "__main__":
    main()
