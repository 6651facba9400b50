"""Prometheus metrics for RPCs and a /healthz probe, over HTTP on each service's metrics port."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import REGISTRY, Counter, Histogram, make_wsgi_app

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


class MetricsServer:
    """GET /healthz answers 200 while the service is SERVING and 503 otherwise (a probe for
    Kubernetes when the gRPC port speaks mTLS, which gRPC probes cannot); every other path
    serves the Prometheus metrics. Plain HTTP, in a daemon thread."""

    def __init__(self, host: str, port: int, serving: Callable[[], bool]) -> None:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        server_class = type(
            "_MetricsHttpServer", (_ThreadingWSGIServer,), {"address_family": family}
        )
        self._server: WSGIServer = make_server(
            host, port, _app(serving), server_class=server_class, handler_class=_QuietHandler
        )
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics-http", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def start_metrics_server(
    host: str, port: int | None, serving: Callable[[], bool]
) -> MetricsServer | None:
    """Starts /metrics and /healthz on host:port (0: a free port); None when disabled."""
    if port is None:
        return None
    server = MetricsServer(host, port, serving)
    logger.info("metrics listening", extra={"metrics_port": server.port})
    return server


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    """Probes and scrapes every few seconds would flood the log."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


_Wsgi = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _app(serving: Callable[[], bool]) -> _Wsgi:
    metrics: _Wsgi = make_wsgi_app(REGISTRY)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/healthz":
            return metrics(environ, start_response)
        up = serving()
        status = "200 OK" if up else "503 Service Unavailable"
        start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
        return [b"SERVING\n" if up else b"NOT_SERVING\n"]

    return app
