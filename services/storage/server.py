"""Wires the storage service: database, blobs, URL signer, library, gRPC servicer, file server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import timedelta

import grpc

from gouache.contracts.storage.v1 import storage_pb2_grpc
from gouache.db import create_engine
from gouache.ratelimit.calls import limit_calls
from gouache.runtime.audit import AuditReporter
from gouache.runtime.auth import TokenSettings, TokenVerifier
from gouache.runtime.clients import CallOptions, ServiceTokenSource, jwks_fetcher, open_channel
from gouache.runtime.context import Principal
from gouache.runtime.server import ServiceSpec
from services.storage.blobs import open_blobs
from services.storage.domain import ImageLibrary
from services.storage.domain.lifecycle import ImageLifecycle, RetentionPolicy
from services.storage.domain.screening import ContentSafety, ContentScorer
from services.storage.files import FileServer
from services.storage.safety import load_content_safety
from services.storage.servicer import POLICY, SERVICE_NAME, StorageServicer
from services.storage.settings import StorageSettings
from services.storage.store import StorageStore
from services.storage.urls import UrlSigner

logger = logging.getLogger(__name__)

PURGE_INTERVAL_S = 3600.0


@dataclass
class StorageService:
    """The parts of a built storage service; `spec` and `verifier` go to start_service/serve."""

    spec: ServiceSpec
    verifier: TokenVerifier
    library: ImageLibrary
    files: FileServer
    lifecycle: ImageLifecycle
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)


async def build(
    settings: StorageSettings, *, verifier: TokenVerifier | None = None
) -> tuple[ServiceSpec, TokenVerifier]:
    """The service spec and the verifier for start_service/serve (see build_service)."""
    service = await build_service(settings, verifier=verifier)
    return service.spec, service.verifier


async def build_service(
    settings: StorageSettings,
    *,
    verifier: TokenVerifier | None = None,
    scorer: ContentScorer | None = None,
) -> StorageService:
    """Builds the service; nothing connects or listens until the spec's start hooks run.

    Without a verifier, tokens are checked against the auth service's JWKS at
    settings.auth_addr. With content safety on, the NSFW model is loaded (in a thread)
    unless a loaded `scorer` is passed in. Raises ValueError when no URL signing key is
    configured, and SafetyModelUnavailable when the model cannot be loaded.
    """
    signer = UrlSigner(settings.signing_key(), settings.public_url)
    audit: AuditReporter | None = None
    audit_channel: grpc.aio.Channel | None = None
    if settings.service_api_key:
        audit_channel = open_channel(settings.auth_addr, credentials=settings.channel_credentials())
        audit = AuditReporter(
            audit_channel,
            CallOptions(
                ServiceTokenSource(audit_channel, settings.service_api_key), settings.call_timeout_s
            ),
        )

    async def refused(owner_id: str, image_id: str, score: float | None) -> None:
        if audit is not None:
            await audit.report(
                Principal(user_id=owner_id, role="user"),
                "upload.refused_unsafe",
                target=f"image:{image_id}",
                subject_id=owner_id,
                detail=f"nsfw_score={score:.3f}" if score is not None else "",
            )

    safety = await _content_safety(settings, scorer)
    store = StorageStore(create_engine(settings.database_url))
    blobs = open_blobs(settings)
    library = ImageLibrary(
        store,
        blobs.store,
        signer,
        limits=settings.image_limits(),
        upload_ttl=settings.upload_ttl(),
        decode_concurrency=settings.decode_concurrency,
        safety=safety,
        retention=RetentionPolicy(
            days=settings.retention_days, per_plan=settings.retention_days_per_plan
        ),
        on_refused=refused,
    )
    lifecycle = ImageLifecycle(
        store,
        blobs.store,
        batch_size=settings.retention_sweep_batch,
        stall_s=settings.retention_stall_s,
        tombstone_days=settings.expired_tombstone_days,
    )
    channel: grpc.aio.Channel | None = None
    if verifier is None:
        channel = open_channel(settings.auth_addr, credentials=settings.channel_credentials())
        verifier = TokenVerifier(
            jwks_fetcher(channel),
            TokenSettings(issuer=settings.jwt_issuer, audience=settings.jwt_audience),
        )
    files = FileServer(
        library,
        verifier,
        host=settings.http_host,
        port=settings.http_port,
        shutdown_timeout_s=settings.grace_s,
    )
    servicer = StorageServicer(library, lifecycle, audit)
    spec = ServiceSpec(
        name="storage",
        service_names=[SERVICE_NAME],
        register=lambda server: storage_pb2_grpc.add_StorageServiceServicer_to_server(
            servicer, server
        ),
        policy=POLICY,
    )
    service = StorageService(
        spec=spec, verifier=verifier, library=library, files=files, lifecycle=lifecycle
    )
    retention = timedelta(seconds=settings.reservation_retention_s)

    async def prepare_storage() -> None:
        sqlite_file = settings.sqlite_path()
        if sqlite_file is not None:
            sqlite_file.parent.mkdir(parents=True, exist_ok=True)
        await store.create_schema()
        await blobs.prepare()

    async def start_housekeeping() -> None:
        service._tasks.append(asyncio.create_task(_purge_forever(library, retention)))
        service._tasks.append(
            asyncio.create_task(_sweep_forever(lifecycle, settings.retention_sweep_interval_s))
        )

    async def stop_housekeeping() -> None:
        for task in service._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        service._tasks.clear()

    async def close_connections() -> None:
        for opened in (channel, audit_channel):
            if opened is not None:
                await opened.close()
        await store.close()
        await blobs.close()

    spec.on_start = [prepare_storage, files.start, start_housekeeping]
    # Stop hooks run in reverse: housekeeping, then the file server, then connections.
    spec.on_stop = [close_connections, files.stop, stop_housekeeping]
    limit_calls(spec, settings)
    return service


async def _content_safety(
    settings: StorageSettings, scorer: ContentScorer | None
) -> ContentSafety | None:
    if settings.nsfw_filter and scorer is not None:
        return ContentSafety(scorer=scorer, threshold=settings.nsfw_threshold)
    return await asyncio.to_thread(
        load_content_safety,
        enabled=settings.nsfw_filter,
        threshold=settings.nsfw_threshold,
        threads=settings.nsfw_threads,
    )


async def _purge_forever(library: ImageLibrary, retention: timedelta) -> None:
    while True:
        try:
            await library.purge_reservations(retention)
        except Exception:
            logger.exception("purging expired upload reservations failed")
        await asyncio.sleep(PURGE_INTERVAL_S)


async def _sweep_forever(lifecycle: ImageLifecycle, interval_s: float) -> None:
    """The retention sweep, once per interval, each run bounded by its batch size."""
    while True:
        try:
            await lifecycle.sweep()
        except Exception:
            logger.exception("the retention sweep failed; it runs again after the interval")
        await asyncio.sleep(interval_s)
