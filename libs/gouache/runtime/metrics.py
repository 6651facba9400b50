"""Prometheus metrics for RPCs, exposed over HTTP on each service's metrics port."""

from __future__ import annotations

import logging

from prometheus_client import Counter, Histogram, start_http_server

logger = logging.getLogger(__name__)

RPC_REQUESTS = Counter(
    "gouache_grpc_requests_total",
    "gRPC requests handled, by method and status code.",
    ["service", "method", "code"],
)
RPC_ERRORS = Counter(
    "gouache_grpc_errors_total",
    "gRPC requests that ended in a non-OK status.",
    ["service", "method", "code"],
)
RPC_LATENCY = Histogram(
    "gouache_grpc_request_duration_seconds",
    "Time to handle a gRPC request.",
    ["service", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


def start_metrics_server(host: str, port: int | None) -> int | None:
    """Starts the /metrics HTTP endpoint; returns the bound port, or None when disabled."""
    if port is None:
        return None
    server, _thread = start_http_server(port, addr=host)
    bound = int(server.server_address[1])
    logger.info("metrics listening", extra={"metrics_port": bound})
    return bound
