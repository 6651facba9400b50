"""A jobs server in process on port 0, over SQLite, with storage as an in-memory ImageResolver."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import select

from gouache.contracts.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from gouache.db import create_engine
from gouache.runtime.auth import TokenVerifier
from gouache.runtime.interceptors import CallGuard
from gouache.runtime.server import RunningService, start_service
from gouache.secretbox import SecretBox, generate_key
from services.jobs.app import JobsApp, JobsConfig
from services.jobs.server import service_spec
from services.jobs.settings import JobsSettings
from services.jobs.store import JobStore, outbox
from tests.helpers.tokens import TestSigner
from tests.unit.jobs.helpers import InMemoryImages

# The routing the servicer tests are written against: two gatys versions, default on v1
# (the shipped seed, DEFAULT_SEED_MODELS, is checked in test_domain_routing).
TEST_SEED_MODELS: dict[str, Any] = {
    "versions": [
        {
            "name": "gatys.lite0-v1",
            "family": "gatys",
            "encoder": "efficientnet-lite0",
            "tile_size": 512,
            "config": {"eta_seconds": 60},
            "description": "Gatys optimization on EfficientNet-Lite0 features.",
        },
        {
            "name": "gatys.lite0-fast",
            "family": "gatys",
            "encoder": "efficientnet-lite0",
            "tile_size": 256,
            "config": {"eta_seconds": 5},
            "description": "Gatys with few steps and small tiles.",
        },
    ],
    "routes": {
        "default": [{"model_version": "gatys.lite0-v1", "weight": 100}],
        "gatys": [{"model_version": "gatys.lite0-v1", "weight": 100}],
        "gatys-fast": [{"model_version": "gatys.lite0-fast", "weight": 100}],
    },
}


@dataclass
class Harness:
    """The running server and what tests poke at."""

    running: RunningService
    channel: grpc.aio.Channel
    stub: jobs_pb2_grpc.JobsServiceStub
    signer: TestSigner
    app: JobsApp
    store: JobStore
    images: InMemoryImages

    def auth(self, user: str = "usr_alice", **kwargs: Any) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.signer.token(user, **kwargs)}"),)

    def admin(self) -> tuple[tuple[str, str], ...]:
        return self.auth("usr_admin", role="admin", scopes=("admin:*",))

    def service(self) -> tuple[tuple[str, str], ...]:
        return self.auth("usr_svc", role="service", scopes=("internal",))

    def operator(self) -> tuple[tuple[str, str], ...]:
        return self.auth("usr_operator", role="operator", scopes=("read:models", "write:models"))

    def job_request(self, user: str = "usr_alice", *, styles: int = 1, **fields: Any) -> Any:
        content = self.images.add(user)
        style_urls = [self.images.add(user) for _ in range(styles)]
        return jobs_pb2.CreateJobRequest(content_url=content, style_urls=style_urls, **fields)

    async def create(self, user: str = "usr_alice", **fields: Any) -> jobs_pb2.CreateJobResponse:
        response: jobs_pb2.CreateJobResponse = await self.stub.CreateJob(
            self.job_request(user, **fields), metadata=self.auth(user), timeout=10
        )
        return response

    async def outbox_events(self) -> list[tuple[str, str]]:
        async with self.store.sessions() as session:
            rows = await session.execute(
                select(outbox.c.subject, outbox.c.event_id).order_by(
                    outbox.c.created_at, outbox.c.event_id
                )
            )
            return [(row.subject, row.event_id) for row in rows]

    async def outbox_payloads(self, subject: str) -> list[bytes]:
        async with self.store.sessions() as session:
            rows = await session.execute(
                select(outbox.c.payload).where(outbox.c.subject == subject)
            )
            return [row.payload for row in rows]


async def make_app(
    database_url: str,
    images: InMemoryImages,
    *,
    config: JobsConfig | None = None,
    seed: dict[str, Any] | None = None,
) -> JobsApp:
    store = JobStore(
        create_engine(database_url),
        secrets=SecretBox.from_setting(generate_key(), variable="GOUACHE_JOBS_SECRETS_KEY"),
    )
    await store.create_schema()
    app = JobsApp(
        store,
        images,
        images,
        config=config or JobsConfig(watch_poll_interval_s=0.2, allow_private_webhook_urls=True),
    )
    await app.seed_models(seed or TEST_SEED_MODELS)
    return app


async def start_harness(
    app: JobsApp, images: InMemoryImages, *, guard: CallGuard | None = None
) -> Harness:
    signer = TestSigner()
    spec = service_spec(app)
    spec.guard = guard
    running = await start_service(
        JobsSettings(port=0, database_url="sqlite+aiosqlite://"),
        spec,
        TokenVerifier(signer.fetch),
    )
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    return Harness(
        running=running,
        channel=channel,
        stub=jobs_pb2_grpc.JobsServiceStub(channel),
        signer=signer,
        app=app,
        store=app.store,
        images=images,
    )


async def stop_harness(harness: Harness) -> None:
    await harness.channel.close()
    await harness.running.stop(0)
    await harness.store.close()


@pytest.fixture
async def jobs(tmp_path: Path) -> AsyncIterator[Harness]:
    images = InMemoryImages()
    app = await make_app(f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}", images)
    harness = await start_harness(app, images)
    yield harness
    await stop_harness(harness)
