"""Runs the inference service: `python -m services.inference` (GOUACHE_INFERENCE_* settings)."""

from __future__ import annotations

import asyncio

from gouache.runtime.logging import configure_logging
from gouache.runtime.server import serve
from gouache.runtime.tracing import configure_tracing
from services.inference.server import build
from services.inference.settings import InferenceSettings


async def _main(settings: InferenceSettings) -> None:
    spec, verifier = await build(settings)
    await serve(settings, spec, verifier)


def main() -> None:
    """Reads settings once, configures logs and traces, and serves until SIGTERM."""
    settings = InferenceSettings()
    configure_logging("inference", level=settings.log_level, json_output=settings.log_json)
    configure_tracing("inference", console=settings.otel_console)
    asyncio.run(_main(settings))


if __name__ == "__main__":
    main()
