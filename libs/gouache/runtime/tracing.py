"""OpenTelemetry: a tracer provider configured by the standard OTEL_* variables, gRPC interceptors.

The SDK reads most of the standard variables itself, and this module leaves them to it:
``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` (the resource),
``OTEL_TRACES_SAMPLER``/``_ARG`` (the sampler), ``OTEL_EXPORTER_OTLP_*`` (the OTLP
exporter's endpoint, headers, TLS, timeout, compression), ``OTEL_BSP_*`` (batching),
``OTEL_PROPAGATORS`` (W3C trace context and baggage by default) and ``OTEL_SDK_DISABLED``.
What it decides is which exporters run, since the embedded mesh has no collector: OTLP
when ``OTEL_TRACES_EXPORTER`` says ``otlp`` or, with that unset, when an OTLP endpoint is
given; the console when the service's ``otel_console`` setting is on; none otherwise.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

logger = logging.getLogger(__name__)

OTLP = "otlp"
CONSOLE = "console"
NONE = "none"
# Names the SDK's own configurator accepts for the OTLP/gRPC exporter.
_OTLP_ALIASES = {OTLP, "otlp_proto_grpc"}
_SDK_DEFAULT_SERVICE_NAME = "unknown_service"

_configured = False


class TracingConfigError(ValueError):
    """An OTEL_* variable asks for something this build cannot do; the message says what."""


def trace_exporter_names(environ: Mapping[str, str], *, console: bool) -> list[str]:
    """Which span exporters to run (``otlp``, ``console``), from the OTEL_* variables.

    ``OTEL_TRACES_EXPORTER`` (a comma-separated list: ``otlp``, ``console``, ``none``) wins
    when set; unset, OTLP runs when ``OTEL_EXPORTER_OTLP_ENDPOINT`` or
    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set. ``console`` (the service's
    ``GOUACHE_<SERVICE>_OTEL_CONSOLE``) adds the console exporter either way. Only OTLP over
    gRPC is installed, so another ``OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL`` is refused.
    """
    declared = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    names: list[str] = []
    if declared:
        for raw in declared.split(","):
            name = raw.strip()
            if name in _OTLP_ALIASES:
                name = OTLP
            if name not in (OTLP, CONSOLE, NONE):
                raise TracingConfigError(
                    f"OTEL_TRACES_EXPORTER={declared}: unsupported exporter {name!r}; "
                    f"this build has otlp (gRPC), console and none"
                )
            if name != NONE and name not in names:
                names.append(name)
    elif _otlp_endpoint(environ):
        names.append(OTLP)
    if console and CONSOLE not in names:
        names.append(CONSOLE)
    if OTLP in names:
        protocol = (
            environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
            or "grpc"
        ).strip()
        if protocol != "grpc":
            raise TracingConfigError(
                f"OTLP protocol {protocol!r} is not installed; this build exports OTLP over "
                f"gRPC only (unset OTEL_EXPORTER_OTLP_PROTOCOL or set it to grpc)"
            )
    return names


def _otlp_endpoint(environ: Mapping[str, str]) -> str:
    return (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or ""
    ).strip()


def service_resource(service: str) -> Resource:
    """The resource from OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME (read by the SDK),
    named ``gouache-<service>`` when neither names the service."""
    resource = Resource.create()
    named = str(resource.attributes.get(SERVICE_NAME, ""))
    if not named or named.startswith(_SDK_DEFAULT_SERVICE_NAME):
        resource = resource.merge(Resource({SERVICE_NAME: f"gouache-{service}"}))
    return resource


def _exporter(name: str) -> SpanExporter:
    if name == OTLP:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        # Endpoint, headers, TLS, timeout and compression come from OTEL_EXPORTER_OTLP_*.
        return OTLPSpanExporter()
    # stderr, with the logs: stdout is for what a command prints as its answer.
    return ConsoleSpanExporter(out=sys.stderr)


def configure_tracing(
    service: str, *, console: bool = False, environ: Mapping[str, str] | None = None
) -> None:
    """Installs an SDK tracer provider once per process, exporting as OTEL_* ask.

    Spans always exist, whatever is exported: their trace ids appear in logs, and the W3C
    trace context they carry crosses gRPC calls and NATS messages. Raises
    TracingConfigError for an exporter or protocol this build does not have.
    """
    global _configured
    if _configured:
        return
    env = os.environ if environ is None else environ
    names = trace_exporter_names(env, console=console)
    resource = service_resource(service)
    # The sampler is the SDK's default: it reads OTEL_TRACES_SAMPLER and _ARG.
    provider = TracerProvider(resource=resource)
    for name in names:
        provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
    trace.set_tracer_provider(provider)
    _configured = True
    targets = [
        f"otlp {_otlp_endpoint(env) or '(default endpoint)'}" if n == OTLP else n for n in names
    ]
    logger.info(
        "tracing as %s, exporting spans to %s",
        resource.attributes.get(SERVICE_NAME),
        ", ".join(targets) or "nothing",
    )


def server_interceptors() -> list[Any]:
    """The server side of gRPC tracing: continues the caller's W3C trace context."""
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    return [aio_server_interceptor()]  # type: ignore[no-untyped-call]


def client_interceptors() -> list[Any]:
    """The client side: a span per call, its context sent in the call's metadata."""
    from opentelemetry.instrumentation.grpc import aio_client_interceptors

    return list(aio_client_interceptors())  # type: ignore[no-untyped-call]
