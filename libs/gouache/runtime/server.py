"""One way to start every service: grpc.aio, health, reflection, metrics, tracing, mTLS, drain."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from gouache.runtime.auth import MethodPolicy, TokenVerifier
from gouache.runtime.interceptors import CallGuard, CallInterceptor
from gouache.runtime.metrics import MetricsServer, start_metrics_server
from gouache.runtime.settings import ServiceSettings
from gouache.runtime.tracing import server_interceptors

logger = logging.getLogger(__name__)

# The cyclic garbage collector's first threshold (allocations less deallocations between
# young collections; Python's default is 700). A service allocates a few thousand objects
# per call, so the default ran a young collection every few calls and a full one every
# few hundred: about 3 % of jobs' CPU under load (gc.callbacks, loadtests/RESULTS.md).
GC_YOUNG_THRESHOLD = 20_000

Hook = Callable[[], Awaitable[None]]

# grpcio-reflection implements only v1alpha; v1 (which grpcurl and newer tools ask first) is
# the same protocol under another package, with identical messages on the wire.
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"


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
    # Further services reflection describes, imported into the default descriptor pool: the
    # service the edge routes reflection to describes the whole public API.
    described_services: Sequence[str] = ()
    # Checked on every authenticated call after authorization: the rate limit of the public
    # services (gouache.ratelimit); None for internal services or with limiting off.
    guard: CallGuard | None = None


@dataclass
class RunningService:
    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    spec: ServiceSpec
    metrics: MetricsServer | None = None
    # What /healthz on the metrics port reports; follows the health service.
    serving: bool = False

    @property
    def metrics_port(self) -> int | None:
        return None if self.metrics is None else self.metrics.port

    def set_serving(self, serving: bool) -> None:
        self.serving = serving
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *self.spec.service_names):
            asyncio.get_running_loop().create_task(self.health.set(name, status))

    async def stop(self, grace_s: float) -> None:
        """Reports NOT_SERVING, lets calls in flight finish, then runs the stop hooks."""
        self.serving = False
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace_s)
        for hook in reversed(self.spec.on_stop):
            try:
                await hook()
            except Exception:
                logger.exception("stop hook failed")
        if self.metrics is not None:
            await asyncio.to_thread(self.metrics.close)


async def create_server(
    settings: ServiceSettings, spec: ServiceSpec, verifier: TokenVerifier | None
) -> RunningService:
    """Builds and starts the server on settings.host:port (0 = a free port); not yet SERVING.

    With settings' mTLS files the port speaks TLS and requires a client certificate signed by
    the CA; without them, plaintext h2c."""
    options = [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.so_reuseport", 0),
    ]
    server = grpc.aio.server(
        interceptors=[
            *server_interceptors(),
            CallInterceptor(spec.name, spec.policy, verifier, guard=spec.guard),
        ],
        options=options,
    )
    spec.register(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    _enable_reflection(
        server,
        (
            *spec.service_names,
            *spec.described_services,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
    )
    address = f"{settings.host}:{settings.port}"
    tls = settings.tls_files()
    if tls is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, tls.server_credentials())
    if port == 0:
        raise RuntimeError(f"could not bind {address}")
    running = RunningService(server=server, port=port, health=health_servicer, spec=spec)
    for name in ("", *spec.service_names):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    await server.start()
    running.metrics = start_metrics_server(
        settings.host, settings.metrics_port, lambda: running.serving
    )
    logger.info(
        "listening",
        extra={
            "port": port,
            "service": spec.name,
            "metrics_port": running.metrics_port,
            "tls": tls is not None,
        },
    )
    return running


def _enable_reflection(server: grpc.aio.Server, service_names: Sequence[str]) -> None:
    """Server reflection v1alpha, and v1 answered by the same servicer."""
    servicer = reflection.aio.ReflectionServicer(service_names)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    v1 = grpc.method_handlers_generic_handler(
        REFLECTION_V1,
        {
            "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
                servicer.ServerReflectionInfo,
                request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
                response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
            )
        },
    )
    server.add_generic_rpc_handlers((v1,))


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
    running.serving = True
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
    settle_heap()
    await stop.wait()
    logger.info("draining", extra={"grace_s": settings.grace_s})
    await running.stop(settings.grace_s)
    logger.info("stopped")


def settle_heap() -> None:
    """Once a service has started: moves every object alive now (modules, settings,
    models, protobuf descriptors) out of the collector's reach, since it will live as long
    as the process, and makes young collections rarer (GC_YOUNG_THRESHOLD)."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)
