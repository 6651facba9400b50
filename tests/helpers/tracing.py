"""Spans finished in this test process, collected by an in-memory exporter while a test asks."""

from __future__ import annotations

from collections.abc import Iterator

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


class _WhileCollecting(SimpleSpanProcessor):
    """Exports only while a test collects, so other tests' spans do not pile up in memory."""

    collecting = False

    def on_end(self, span: ReadableSpan) -> None:
        if self.collecting:
            super().on_end(span)


_exporter: InMemorySpanExporter | None = None
_processor: _WhileCollecting | None = None


def _install() -> tuple[InMemorySpanExporter, _WhileCollecting]:
    """The process's exporter, installed once on the global SDK tracer provider.

    The global provider can be set only once per process, so whichever test comes first
    installs an SDK provider (or finds one) and every later test shares its exporter.
    """
    global _exporter, _processor
    if _exporter is None or _processor is None:
        provider = trace.get_tracer_provider()
        if not isinstance(provider, TracerProvider):
            provider = TracerProvider()
            trace.set_tracer_provider(provider)
        _exporter = InMemorySpanExporter()
        _processor = _WhileCollecting(_exporter)
        provider.add_span_processor(_processor)
    return _exporter, _processor


def collected_spans() -> Iterator[InMemorySpanExporter]:
    """For a test's fixture: the in-memory exporter, collecting only during the test."""
    exporter, processor = _install()
    exporter.clear()
    processor.collecting = True
    try:
        yield exporter
    finally:
        processor.collecting = False
        exporter.clear()


def named(finished: tuple[ReadableSpan, ...] | list[ReadableSpan], name: str) -> list[ReadableSpan]:
    """The finished spans with this name, in the order they ended."""
    return [span for span in finished if span.name == name]
