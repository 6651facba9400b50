"""`python -m services.feedback`: serves FeedbackService and consumes job outcomes."""

from __future__ import annotations

import asyncio

from gouache.runtime.logging import configure_logging
from gouache.runtime.server import serve
from gouache.runtime.tracing import configure_tracing
from services.feedback.server import build
from services.feedback.settings import FeedbackSettings


async def _serve(settings: FeedbackSettings) -> None:
    spec, verifier = await build(settings)
    await serve(settings, spec, verifier)


def main() -> None:
    """Reads settings from GOUACHE_FEEDBACK_* variables and serves until SIGTERM."""
    settings = FeedbackSettings()
    configure_logging("feedback", level=settings.log_level, json_output=settings.log_json)
    configure_tracing("feedback", console=settings.otel_console)
    asyncio.run(_serve(settings))


if __name__ == "__main__":
    main()
