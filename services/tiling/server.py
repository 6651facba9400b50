"""Wires the tiling worker: JetStream consumers, storage and inference clients, the servicer."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import partial

import grpc
from nats.aio.client import Client as NATS

from gouache.bus.jetstream import connect, disconnect, ensure_streams
from gouache.contracts.tiling.v1 import tiling_pb2_grpc
from gouache.runtime.auth import AUTHENTICATED, MethodPolicy, TokenSettings, TokenVerifier
from gouache.runtime.clients import ServiceTokenSource, jwks_fetcher, open_channel
from gouache.runtime.server import ServiceSpec
from services.tiling.bus import CancelWatcher, JetStreamExecutionEvents, JobConsumer
from services.tiling.clients import GrpcInference, GrpcStorage, StaticTokenSource, call_options
from services.tiling.domain import CanceledJobs, JobRunner, ModelQuery, WorkerStatus
from services.tiling.servicer import TilingServicer
from services.tiling.settings import TilingSettings

logger = logging.getLogger(__name__)

SERVICE_NAME = "gouache.tiling.v1.TilingService"

POLICY: MethodPolicy = {
    f"/{SERVICE_NAME}/PlanTiles": AUTHENTICATED,
    f"/{SERVICE_NAME}/GetWorkerStatus": AUTHENTICATED,
}


def model_tile_size(inference: GrpcInference, default: int) -> ModelQuery[int]:
    """The tile size a version's inference endpoint reports for it, else `default` (logged)."""

    async def tile_size_for(model_version: str, endpoint: str) -> int:
        size = await inference.tile_size(model_version, endpoint)
        if size is None:
            logger.warning(
                "inference does not report a tile size for this version; using the default",
                extra={
                    "model_version": model_version,
                    "inference_endpoint": endpoint or "default",
                    "tile_size": default,
                },
            )
            return default
        return size

    return tile_size_for


@dataclass
class _Connections:
    """What on_start opens and on_stop closes."""

    channels: list[grpc.aio.Channel] = field(default_factory=list)
    nats: NATS | None = None
    consumer: JobConsumer | None = None
    watcher: CancelWatcher | None = None


async def build(
    settings: TilingSettings,
    *,
    verifier: TokenVerifier | None = None,
    tile_size_for: ModelQuery[int] | None = None,
) -> tuple[ServiceSpec, TokenVerifier]:
    """The service spec: the job consumer starts in on_start, before SERVING."""
    opened = _Connections()
    if settings.service_token:
        tokens: ServiceTokenSource | StaticTokenSource = StaticTokenSource(settings.service_token)
    else:
        auth_for_tokens = open_channel(
            settings.auth_addr, credentials=settings.channel_credentials()
        )
        opened.channels.append(auth_for_tokens)
        tokens = ServiceTokenSource(auth_for_tokens, settings.service_api_key)
    if verifier is None:
        auth_channel = open_channel(settings.auth_addr, credentials=settings.channel_credentials())
        opened.channels.append(auth_channel)
        verifier = TokenVerifier(
            jwks_fetcher(auth_channel),
            TokenSettings(issuer=settings.jwt_issuer, audience=settings.jwt_audience),
        )
    storage_channel = open_channel(
        settings.storage_addr,
        max_message_bytes=settings.max_message_bytes,
        credentials=settings.channel_credentials(),
    )
    opened.channels.append(storage_channel)
    # The default inference and each version's own endpoint, connected on first use.
    inference = GrpcInference(
        settings.inference_addr,
        call_options(tokens, settings.call_timeout_s),
        settings.inference_timeout_s,
        connect=partial(
            open_channel,
            max_message_bytes=settings.max_message_bytes,
            credentials=settings.channel_credentials(),
        ),
    )
    canceled = CanceledJobs(settings.canceled_memory)
    status = WorkerStatus()

    async def start() -> None:
        nc, js = await connect(settings.nats_url, name="gouache-tiling")
        opened.nats = nc
        await ensure_streams(js, replicas=settings.stream_replicas)
        runner = JobRunner(
            GrpcStorage(storage_channel, call_options(tokens, settings.call_timeout_s)),
            inference,
            JetStreamExecutionEvents(js),
            canceled=canceled,
            tile_size_for=tile_size_for or model_tile_size(inference, settings.default_tile_size),
            trained_styles_only=inference.trained_styles_only,
            device_for=inference.device,
            default_overlap=settings.default_overlap,
            batch_size=settings.batch_size,
            # Leave a quarter of the gRPC message limit for framing and the response side.
            max_batch_bytes=settings.max_message_bytes * 3 // 4,
            max_deliver=settings.max_deliver,
            progress_interval_s=settings.progress_interval_s,
            result_url_ttl_s=settings.result_url_ttl_s,
            status=status,
        )
        opened.watcher = CancelWatcher(js, canceled, lookback_s=settings.cancel_lookback_s)
        await opened.watcher.start()
        opened.consumer = JobConsumer(
            js,
            runner,
            ack_wait_s=settings.ack_wait_s,
            max_deliver=settings.max_deliver,
            concurrency=settings.concurrency,
            aging_s=settings.priority_aging_s,
            retry_initial_s=settings.retry_initial_s,
            retry_max_s=settings.retry_max_s,
        )
        await opened.consumer.start()
        logger.info(
            "consuming jobs",
            extra={"ack_wait_s": settings.ack_wait_s, "max_deliver": settings.max_deliver},
        )

    async def stop() -> None:
        if opened.consumer is not None:
            await opened.consumer.stop()
        if opened.watcher is not None:
            await opened.watcher.stop()
        if opened.nats is not None:
            await disconnect(opened.nats)
        await inference.close()
        for channel in opened.channels:
            await channel.close()

    def register(server: grpc.aio.Server) -> None:
        tiling_pb2_grpc.add_TilingServiceServicer_to_server(
            TilingServicer(status, default_tile_size=settings.default_tile_size), server
        )

    spec = ServiceSpec(
        name="tiling",
        service_names=[SERVICE_NAME],
        register=register,
        policy=POLICY,
        on_start=[start],
        on_stop=[stop],
    )
    return spec, verifier
