"""OpenTelemetry for gRPC: a tracer provider, and server and client interceptors."""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

_configured = False


def configure_tracing(service: str, *, console: bool = False) -> None:
    """Installs an SDK tracer provider once per process.

    Spans always exist (their trace ids appear in logs); they are exported to the console
    only when `console` is set (GOUACHE_<SERVICE>_OTEL_CONSOLE), since no collector runs in
    the embedded mode.
    """
    global _configured
    if _configured:
        return
    from opentelemetry.sdk.resources import Resource

    provider = TracerProvider(resource=Resource.create({"service.name": f"gouache-{service}"}))
    if console:
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)
    _configured = True


def server_interceptors() -> list[Any]:
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    return [aio_server_interceptor()]  # type: ignore[no-untyped-call]


def client_interceptors() -> list[Any]:
    from opentelemetry.instrumentation.grpc import aio_client_interceptors

    return list(aio_client_interceptors())  # type: ignore[no-untyped-call]
