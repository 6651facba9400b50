"""Spans finished in this test process, collected by an in-memory exporter."""

from __future__ import annotations

from collections.abc import Iterator

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

_exporter: InMemorySpanExporter | None = None


def in_memory_exporter() -> InMemorySpanExporter:
    """The process's span exporter, installed once on the global SDK tracer provider.

    The global provider can be set only once per process, so whichever test comes first
    installs an SDK provider (or finds one) and every later test shares its exporter.
    """
    global _exporter
    if _exporter is None:
        provider = trace.get_tracer_provider()
        if not isinstance(provider, TracerProvider):
            provider = TracerProvider()
            trace.set_tracer_provider(provider)
        _exporter = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(_exporter))
    return _exporter


def collected_spans() -> Iterator[InMemorySpanExporter]:
    """For a test's fixture: the in-memory exporter, emptied before and after the test."""
    exporter = in_memory_exporter()
    exporter.clear()
    yield exporter
    exporter.clear()


def named(finished: tuple[ReadableSpan, ...] | list[ReadableSpan], name: str) -> list[ReadableSpan]:
    """The finished spans with this name, in the order they ended."""
    return [span for span in finished if span.name == name]
