"""Wires the feedback service: database, outcome consumer, use cases, servicer and hooks."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import grpc
from nats.aio.client import Client as NATS

from gouache.bus.consumer import DurableConsumer
from gouache.bus.jetstream import connect, disconnect, ensure_streams
from gouache.contracts.feedback.v1 import feedback_pb2, feedback_pb2_grpc
from gouache.db import create_engine
from gouache.ratelimit.calls import limit_calls
from gouache.runtime.audit import AuditReporter
from gouache.runtime.auth import TokenSettings, TokenVerifier
from gouache.runtime.clients import CallOptions, ServiceTokenSource, jwks_fetcher, open_channel
from gouache.runtime.server import ServiceSpec
from services.feedback.clients import JobsClient
from services.feedback.domain import Clock, FeedbackService, OutcomeWait, utc_now
from services.feedback.events import outcome_consumer
from services.feedback.servicer import FeedbackServicer
from services.feedback.settings import FeedbackSettings
from services.feedback.store import FeedbackDatabase

logger = logging.getLogger(__name__)

SERVICE = feedback_pb2.DESCRIPTOR.services_by_name["FeedbackService"].full_name

POLICY: Mapping[str, str] = {
    f"/{SERVICE}/SubmitFeedback": "write:jobs",
    f"/{SERVICE}/GetModelVersionStats": "read:models",
    f"/{SERVICE}/ListModelVersionStats": "read:models",
    f"/{SERVICE}/GetUsage": "read:jobs",
    f"/{SERVICE}/ExportUsage": "read:jobs",
    f"/{SERVICE}/EraseUser": "internal",
}


@dataclass
class _Connections:
    """What on_start opens and on_stop closes."""

    channels: list[grpc.aio.Channel] = field(default_factory=list)
    nats: NATS | None = None
    consumer: DurableConsumer | None = None


async def build(
    settings: FeedbackSettings, *, verifier: TokenVerifier | None = None, clock: Clock = utc_now
) -> tuple[ServiceSpec, TokenVerifier]:
    """The service spec; the outcome consumer starts in on_start, before SERVING."""
    sqlite_file = settings.sqlite_path()
    if sqlite_file is not None:
        sqlite_file.parent.mkdir(parents=True, exist_ok=True)
    database = FeedbackDatabase(create_engine(settings.database_url))
    opened = _Connections()
    if verifier is None:
        auth_channel = open_channel(settings.auth_addr, credentials=settings.channel_credentials())
        opened.channels.append(auth_channel)
        verifier = TokenVerifier(
            jwks_fetcher(auth_channel),
            TokenSettings(issuer=settings.jwt_issuer, audience=settings.jwt_audience),
        )
    audit: AuditReporter | None = None
    if settings.service_api_key:
        audit_channel = open_channel(settings.auth_addr, credentials=settings.channel_credentials())
        opened.channels.append(audit_channel)
        audit = AuditReporter(
            audit_channel,
            CallOptions(
                ServiceTokenSource(audit_channel, settings.service_api_key), settings.call_timeout_s
            ),
        )
    jobs_channel = open_channel(settings.jobs_addr, credentials=settings.channel_credentials())
    opened.channels.append(jobs_channel)
    jobs = JobsClient(jobs_channel, CallOptions(None, settings.call_timeout_s))
    service = FeedbackService(
        database, clock=clock, jobs=jobs, outcome_wait=OutcomeWait(settings.outcome_wait_s)
    )
    servicer = FeedbackServicer(service, audit)

    async def start() -> None:
        await database.create_schema()
        nc, js = await connect(settings.nats_url, name="gouache-feedback")
        opened.nats = nc
        await ensure_streams(js, replicas=settings.stream_replicas)
        opened.consumer = outcome_consumer(
            js,
            database,
            durable=settings.consumer_name,
            concurrency=settings.consumer_concurrency,
            max_deliver=settings.consumer_max_deliver,
            ack_wait_s=settings.consumer_ack_wait_s,
            retry_initial_s=settings.consumer_retry_initial_s,
            retry_max_s=settings.consumer_retry_max_s,
        )
        await opened.consumer.start()
        logger.info("consuming job outcomes", extra={"durable": settings.consumer_name})

    async def stop() -> None:
        if opened.consumer is not None:
            await opened.consumer.stop()
        if opened.nats is not None:
            await disconnect(opened.nats)
        for channel in opened.channels:
            await channel.close()
        await database.close()

    def register(server: grpc.aio.Server) -> None:
        feedback_pb2_grpc.add_FeedbackServiceServicer_to_server(servicer, server)

    spec = ServiceSpec(
        name="feedback",
        service_names=[SERVICE],
        register=register,
        policy=POLICY,
        on_start=[start],
        on_stop=[stop],
    )
    return limit_calls(spec, settings), verifier
