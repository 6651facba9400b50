"""Inference metrics per model version: calls, errors and time, for the error-rate SLO."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager

from prometheus_client import Counter, Histogram

from gouache.runtime.errors import GouacheError

# A name no served version can have ([a-z0-9][a-z0-9._-]*), for calls naming none of them:
# the label stays bounded whatever callers send.
UNKNOWN_VERSION = "_unknown"

INFERENCE_REQUESTS = Counter(
    "gouache_inference_requests_total",
    "Stylize and StylizeBatch calls, by served model version and gRPC status code.",
    ["model_version", "code"],
)
INFERENCE_ERRORS = Counter(
    "gouache_inference_errors_total",
    "Stylize and StylizeBatch calls that ended in a non-OK status, by served model version "
    "and gRPC status code.",
    ["model_version", "code"],
)
INFERENCE_DURATION = Histogram(
    "gouache_inference_duration_seconds",
    "Time to answer a Stylize or StylizeBatch call (waiting for a compute slot included), "
    "by served model version.",
    ["model_version"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 1, 1.5, 2.5, 5, 10, 30, 60, 120),
)
INFERENCE_CANCELED = Counter(
    "gouache_inference_canceled_total",
    "Stylize and StylizeBatch calls whose caller went away (cancelled, or past its "
    "deadline) before the answer, by served model version; their computation stops at "
    "its next step (one gatys optimisation step) or, still queued, never starts.",
    ["model_version"],
)


def status_code(exc: BaseException | None) -> str:
    """The gRPC status code name the call ends with, as the interceptor maps exceptions."""
    if exc is None:
        return "OK"
    if isinstance(exc, GouacheError):
        return str(exc.code.name)
    if isinstance(exc, asyncio.CancelledError):
        return "CANCELLED"
    return "INTERNAL"


@contextmanager
def observe_stylize(model_version: str, served: Collection[str]) -> Iterator[None]:
    """Counts and times one stylization call for its model version, whatever its outcome."""
    version = model_version if model_version in served else UNKNOWN_VERSION
    started = time.perf_counter()
    code = "OK"
    try:
        yield
    except BaseException as exc:
        code = status_code(exc)
        raise
    finally:
        INFERENCE_REQUESTS.labels(version, code).inc()
        if code != "OK":
            INFERENCE_ERRORS.labels(version, code).inc()
        if code == "CANCELLED":
            INFERENCE_CANCELED.labels(version).inc()
        INFERENCE_DURATION.labels(version).observe(time.perf_counter() - started)


INFERENCE_BATCH_SIZE = Histogram(
    "gouache_inference_batch_size",
    "Images (contents or tiles) per forward pass the micro-batcher ran, by served model "
    "version; 1 for every pass when batching is off (GOUACHE_INFERENCE_MAX_BATCH_SIZE=1).",
    ["model_version"],
    buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64),
)
INFERENCE_QUEUE_DELAY = Histogram(
    "gouache_inference_queue_delay_seconds",
    "Time an image waited in the micro-batcher before its batch started computing: the "
    "queue delay spent filling the batch plus the wait for a compute slot, by served model "
    "version.",
    ["model_version"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


def observe_batch(model_version: str, size: int, delays: Sequence[float]) -> None:
    """Records one batch about to compute: its size and each of its images' queue delay."""
    INFERENCE_BATCH_SIZE.labels(model_version).observe(size)
    queue_delay = INFERENCE_QUEUE_DELAY.labels(model_version)
    for delay in delays:
        queue_delay.observe(delay)
