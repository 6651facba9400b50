"""Structured JSON logs that carry the request id, job id and trace id of the current call."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from gouache.runtime.context import job_id_var, request_id_var

_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; `extra={...}` fields are merged in."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self._service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        job_id = job_id_var.get()
        if job_id:
            entry["job_id"] = job_id
        trace_id = _current_trace_id()
        if trace_id:
            entry["trace_id"] = trace_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def _current_trace_id() -> str | None:
    try:
        from opentelemetry import trace
    except ImportError:  # pragma: no cover - opentelemetry is a core dependency
        return None
    span_context = trace.get_current_span().get_span_context()
    return f"{span_context.trace_id:032x}" if span_context.is_valid else None


def configure_logging(service: str, *, level: str = "INFO", json_output: bool = True) -> None:
    """Routes the root logger to stderr, as JSON lines (services) or plain text (CLI)."""
    handler = logging.StreamHandler(sys.stderr)
    if json_output:
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiosqlite", "asyncio", "nats"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
