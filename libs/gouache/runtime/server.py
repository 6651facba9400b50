"""One way to start every service: grpc.aio, health, reflection, metrics, tracing, drain."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from gouache.runtime.auth import MethodPolicy, TokenVerifier
from gouache.runtime.interceptors import CallInterceptor
from gouache.runtime.metrics import start_metrics_server
from gouache.runtime.settings import ServiceSettings
from gouache.runtime.tracing import server_interceptors

logger = logging.getLogger(__name__)

Hook = Callable[[], Awaitable[None]]


@dataclass
class ServiceSpec:
    """What a service contributes to the common bootstrap."""

    name: str
    # Full proto service names, for health and reflection.
    service_names: Sequence[str]
    # Adds the servicers to the server.
    register: Callable[[grpc.aio.Server], None]
    # Required scope per full method name ("/pkg.Service/Method").
    policy: MethodPolicy
    # Run before the service reports SERVING (warm-up, connections, consumers).
    on_start: list[Hook] = field(default_factory=list)
    # Run after the server stopped taking calls (drain consumers, close pools).
    on_stop: list[Hook] = field(default_factory=list)


@dataclass
class RunningService:
    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    spec: ServiceSpec
    metrics_port: int | None = None

    def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *self.spec.service_names):
            asyncio.get_running_loop().create_task(self.health.set(name, status))

    async def stop(self, grace_s: float) -> None:
        """Reports NOT_SERVING, lets calls in flight finish, then runs the stop hooks."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace_s)
        for hook in reversed(self.spec.on_stop):
            try:
                await hook()
            except Exception:
                logger.exception("stop hook failed")


async def create_server(
    settings: ServiceSettings, spec: ServiceSpec, verifier: TokenVerifier | None
) -> RunningService:
    """Builds and starts the server on settings.host:port (0 = a free port); not yet SERVING."""
    options = [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.so_reuseport", 0),
    ]
    server = grpc.aio.server(
        interceptors=[*server_interceptors(), CallInterceptor(spec.name, spec.policy, verifier)],
        options=options,
    )
    spec.register(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (
            *spec.service_names,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    port = server.add_insecure_port(f"{settings.host}:{settings.port}")
    if port == 0:
        raise RuntimeError(f"could not bind {settings.host}:{settings.port}")
    running = RunningService(server=server, port=port, health=health_servicer, spec=spec)
    for name in ("", *spec.service_names):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    await server.start()
    running.metrics_port = start_metrics_server(settings.host, settings.metrics_port)
    logger.info(
        "listening",
        extra={"port": port, "service": spec.name, "metrics_port": running.metrics_port},
    )
    return running


async def start_service(
    settings: ServiceSettings, spec: ServiceSpec, verifier: TokenVerifier | None
) -> RunningService:
    """create_server, then the start hooks, then SERVING. Tests use this directly."""
    running = await create_server(settings, spec, verifier)
    try:
        for hook in spec.on_start:
            await hook()
    except BaseException:
        await running.stop(0)
        raise
    for name in ("", *spec.service_names):
        await running.health.set(name, health_pb2.HealthCheckResponse.SERVING)
    logger.info("ready", extra={"service": spec.name})
    return running


async def serve(
    settings: ServiceSettings, spec: ServiceSpec, verifier: TokenVerifier | None
) -> None:
    """Runs a service until SIGTERM or SIGINT, then drains gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    running = await start_service(settings, spec, verifier)
    await stop.wait()
    logger.info("draining", extra={"grace_s": settings.grace_s})
    await running.stop(settings.grace_s)
    logger.info("stopped")
