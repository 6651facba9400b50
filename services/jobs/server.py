"""Wires the jobs service: database, storage client, bus, consumer, webhooks and the servicer."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from nats.aio.client import Client as NATS
from sqlalchemy.engine import make_url

from gouache.bus.jetstream import NATS_ERRORS, connect, disconnect, ensure_streams
from gouache.bus.outbox import OutboxRelay
from gouache.contracts.auth.v1 import auth_pb2
from gouache.contracts.feedback.v1 import feedback_pb2
from gouache.contracts.jobs.v1 import jobs_pb2_grpc
from gouache.contracts.storage.v1 import storage_pb2
from gouache.db import create_engine
from gouache.ratelimit.calls import limit_calls
from gouache.runtime.audit import AuditReporter
from gouache.runtime.auth import AUTHENTICATED, MethodPolicy, TokenSettings, TokenVerifier
from gouache.runtime.clients import CallOptions, ServiceTokenSource, jwks_fetcher, open_channel
from gouache.runtime.server import Hook, ServiceSpec
from services.jobs.app import JobsApp, JobsConfig
from services.jobs.clients import DownloadSigner, ErasureClients, ImageResolver, StorageClient
from services.jobs.consumer import (
    ConsumerOptions,
    FinalStateWakeups,
    dead_letter_consumer,
    execution_consumer,
)
from services.jobs.deliverer import WebhookDeliverer
from services.jobs.domain.cache import CachePolicy
from services.jobs.domain.lanes import PreviewPolicy
from services.jobs.domain.quota import QuotaPolicy
from services.jobs.domain.routing import parse_seed
from services.jobs.erasure import ErasureParticipants, UserErasures
from services.jobs.metrics import InFlightSampler
from services.jobs.servicer import JobsServicer
from services.jobs.settings import JobsSettings
from services.jobs.store import JobStore, outbox

logger = logging.getLogger(__name__)

SERVICE_NAME = "gouache.jobs.v1.JobsService"
# Model administration: the operator role, admins (admin:*) and services (internal).
WRITE_MODELS = "write:models"

# The edge routes gRPC reflection here, so jobs describes the whole public API (their
# descriptors are imported above); tiling and inference stay internal.
OTHER_PUBLIC_SERVICES = tuple(
    module.DESCRIPTOR.services_by_name[name].full_name
    for module, name in (
        (auth_pb2, "AuthService"),
        (storage_pb2, "StorageService"),
        (feedback_pb2, "FeedbackService"),
    )
)

POLICY: MethodPolicy = {
    f"/{SERVICE_NAME}/CreateJob": "write:jobs",
    f"/{SERVICE_NAME}/GetJob": "read:jobs",
    f"/{SERVICE_NAME}/ListJobs": "read:jobs",
    f"/{SERVICE_NAME}/CancelJob": "write:jobs",
    f"/{SERVICE_NAME}/WatchJob": "read:jobs",
    f"/{SERVICE_NAME}/WaitJob": "read:jobs",
    f"/{SERVICE_NAME}/CreateBatch": "write:jobs",
    f"/{SERVICE_NAME}/GetBatch": "read:jobs",
    f"/{SERVICE_NAME}/ListBatches": "read:jobs",
    f"/{SERVICE_NAME}/CancelBatch": "write:jobs",
    f"/{SERVICE_NAME}/CreateWebhook": "write:webhooks",
    f"/{SERVICE_NAME}/ListWebhooks": "write:webhooks",
    f"/{SERVICE_NAME}/DeleteWebhook": "write:webhooks",
    f"/{SERVICE_NAME}/DeleteJob": "write:jobs",
    f"/{SERVICE_NAME}/EraseUser": AUTHENTICATED,
    f"/{SERVICE_NAME}/ListModels": "read:models",
    f"/{SERVICE_NAME}/RegisterModelVersion": WRITE_MODELS,
    f"/{SERVICE_NAME}/SetModelRoute": WRITE_MODELS,
    f"/{SERVICE_NAME}/SetModelEndpoint": WRITE_MODELS,
}


def service_spec(
    app: JobsApp,
    *,
    on_start: Sequence[Hook] = (),
    on_stop: Sequence[Hook] = (),
    erasures: UserErasures | None = None,
    audit: AuditReporter | None = None,
) -> ServiceSpec:
    """The ServiceSpec for a JobsApp (tests use it without the bus)."""

    def register(server: grpc.aio.Server) -> None:
        servicer = JobsServicer(app, erasures, audit)
        jobs_pb2_grpc.add_JobsServiceServicer_to_server(servicer, server)

    return ServiceSpec(
        name="jobs",
        service_names=[SERVICE_NAME],
        register=register,
        policy=POLICY,
        on_start=list(on_start),
        on_stop=list(on_stop),
        described_services=OTHER_PUBLIC_SERVICES,
    )


@dataclass
class _Bus:
    """The NATS connection, outbox relay and consumer, which exist between start and stop."""

    settings: JobsSettings
    store: JobStore
    app: JobsApp | None = None
    connection: NATS | None = None
    relay: OutboxRelay | None = None
    hooks: list[Hook] = field(default_factory=list)

    def notify(self) -> None:
        if self.relay is not None:
            self.relay.notify()

    async def start(self) -> None:
        if self.app is None:
            raise RuntimeError("the bus needs the app before it starts")
        self.connection, js = await connect(self.settings.nats_url, name="jobs")
        await ensure_streams(js, replicas=self.settings.stream_replicas)
        self.relay = OutboxRelay(self.store.sessions, outbox, js, reads=self.store.reads)
        await self.relay.start()
        options = ConsumerOptions(
            concurrency=self.settings.consumer_concurrency,
            max_deliver=self.settings.consumer_max_deliver,
            retry_initial_s=self.settings.consumer_retry_initial_s,
            retry_max_s=self.settings.consumer_retry_max_s,
        )
        consumer = execution_consumer(js, self.app, options)
        await consumer.start()
        self.hooks = [consumer.stop, self.relay.stop]
        dead_letters = dead_letter_consumer(js, self.app, options)
        await dead_letters.start()
        self.hooks.insert(0, dead_letters.stop)
        wakeups = await FinalStateWakeups(self.app.notifier).subscribe(self.connection)

        async def unsubscribe() -> None:
            for subscription in wakeups:
                with contextlib.suppress(*NATS_ERRORS):
                    await subscription.unsubscribe()

        self.hooks.insert(0, unsubscribe)

    async def stop(self) -> None:
        for hook in self.hooks:
            await hook()
        self.hooks = []
        self.relay = None
        connection, self.connection = self.connection, None
        if connection is not None:
            await disconnect(connection)


@dataclass
class JobsService:
    """What build() assembled: the spec to serve and the parts tests look into."""

    spec: ServiceSpec
    verifier: TokenVerifier
    app: JobsApp
    store: JobStore
    deliverer: WebhookDeliverer
    erasures: UserErasures


def _ensure_sqlite_dir(database_url: str) -> None:
    url = make_url(database_url)
    if url.drivername.startswith("sqlite") and url.database and url.database != ":memory:":
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)


async def build(
    settings: JobsSettings,
    *,
    verifier: TokenVerifier | None = None,
    images: ImageResolver | None = None,
    downloads: DownloadSigner | None = None,
    participants: ErasureParticipants | None = None,
) -> JobsService:
    """Assembles the service; connections open in on_start, so SERVING means ready."""
    seed = settings.seed_models
    parse_seed(seed)  # a bad setting stops the service here, before it serves
    secrets = settings.secret_box()  # so does a missing or malformed secrets key
    on_stop: list[Hook] = []
    auth_channel = open_channel(settings.auth_addr, credentials=settings.channel_credentials())
    on_stop.append(lambda: auth_channel.close())
    if verifier is None:
        verifier = TokenVerifier(
            jwks_fetcher(auth_channel),
            TokenSettings(issuer=settings.jwt_issuer, audience=settings.jwt_audience),
        )
    calls = CallOptions(
        ServiceTokenSource(auth_channel, settings.service_api_key), settings.call_timeout_s
    )
    storage_channel = open_channel(
        settings.storage_addr, credentials=settings.channel_credentials()
    )
    on_stop.append(lambda: storage_channel.close())
    if images is None or downloads is None:
        storage = StorageClient(storage_channel, calls)
        images = images or storage
        downloads = downloads or storage
    feedback_channel = open_channel(
        settings.feedback_addr, credentials=settings.channel_credentials()
    )
    on_stop.append(lambda: feedback_channel.close())
    if participants is None:
        participants = ErasureClients(
            auth=auth_channel, storage=storage_channel, feedback=feedback_channel, calls=calls
        )

    store = JobStore(create_engine(settings.database_url), secrets=secrets)
    deliverer = WebhookDeliverer(
        store,
        timeout_s=settings.webhook_timeout_s,
        max_attempts=settings.webhook_max_attempts,
        backoff_s=settings.webhook_backoff_s,
        poll_interval_s=settings.webhook_poll_interval_s,
        concurrency=settings.webhook_concurrency,
        allow_private=settings.allow_private_webhook_urls,
    )
    bus = _Bus(settings=settings, store=store)
    app = JobsApp(
        store,
        images,
        downloads,
        config=JobsConfig(
            idempotency_ttl_s=settings.idempotency_ttl_s,
            download_url_ttl_s=settings.download_url_ttl_s,
            watch_poll_interval_s=settings.watch_poll_interval_s,
            preview=PreviewPolicy(max_side=settings.preview_max_side, model=settings.preview_model),
            max_webhooks_per_user=settings.max_webhooks_per_user,
            allow_private_webhook_urls=settings.allow_private_webhook_urls,
            routing_cache_ttl_s=settings.routing_cache_ttl_s,
            style_resolve_ttl_s=settings.style_resolve_ttl_s,
            max_batch_items=settings.max_batch_items,
            quotas=QuotaPolicy(settings.compute_quotas),
            result_cache=CachePolicy(
                max_entries=settings.result_cache_max_entries,
                ttl_s=settings.result_cache_ttl_s,
            ),
        ),
        on_events=bus.notify,
        on_deliveries=deliverer.notify,
    )
    bus.app = app
    erasures = UserErasures(
        app,
        store,
        participants,
        poll_interval_s=settings.erasure_poll_interval_s,
        retry_s=settings.erasure_retry_s,
    )

    async def prepare_database() -> None:
        _ensure_sqlite_dir(settings.database_url)
        await store.create_schema()
        sealed = await store.seal_webhook_secrets()
        if sealed:
            logger.info("webhook secrets sealed under the first key", extra={"count": sealed})
        await app.seed_models(seed)

    in_flight = InFlightSampler(
        store.count_unfinished, count_cache_entries=store.count_cache_entries
    )
    spec = service_spec(
        app,
        on_start=[prepare_database, bus.start, deliverer.start, in_flight.start, erasures.start],
        # Reversed at stop: the in-flight count, deliverer, bus (consumer, relay, NATS), then
        # the engine and channels.
        on_stop=[*on_stop, store.close, bus.stop, deliverer.stop, in_flight.stop, erasures.stop],
        erasures=erasures,
        audit=AuditReporter(auth_channel, calls) if settings.service_api_key else None,
    )
    limit_calls(spec, settings)
    return JobsService(
        spec=spec,
        verifier=verifier,
        app=app,
        store=store,
        deliverer=deliverer,
        erasures=erasures,
    )
