"""The webhook deliverer against real local HTTP receivers, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from aiohttp import web

from gouache.db import new_id, utc_now
from gouache.runtime.context import Principal
from services.jobs.app import JobsApp
from services.jobs.deliverer import LEASE_MARGIN_S, WebhookDeliverer
from services.jobs.domain.jobs import ExecutionFailed
from services.jobs.domain.requests import JobRequest
from services.jobs.store import Delivery
from tests.unit.jobs.conftest import make_app
from tests.unit.jobs.helpers import InMemoryImages

ALICE = Principal(user_id="usr_alice", role="user")
SECRET = "0123456789abcdef"


@pytest.fixture
def images() -> InMemoryImages:
    return InMemoryImages()


@pytest.fixture
async def app(db_url: str, images: InMemoryImages) -> AsyncIterator[JobsApp]:
    app = await make_app(db_url, images)
    try:
        yield app
    finally:
        await app.store.close()


@pytest.fixture
async def always_500() -> AsyncIterator[tuple[str, list[str]]]:
    """A receiver that always fails."""
    bodies: list[str] = []

    async def hook(request: web.Request) -> web.Response:
        bodies.append(await request.text())
        return web.Response(status=500)

    application = web.Application()
    application.router.add_post("/hook", hook)
    runner = web.AppRunner(application)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/hook", bodies
    finally:
        await runner.cleanup()


async def _failed_job(app: JobsApp, images: InMemoryImages) -> str:
    job, _ = await app.create_job(
        ALICE, JobRequest(content_url=images.add("usr_alice"), style_urls=(images.add(None),))
    )
    await app.apply_execution(new_id("evt"), job.job_id, ExecutionFailed("INTERNAL", "boom"))
    return job.job_id


async def _until_settled(deliverer: WebhookDeliverer, app: JobsApp, job_id: str) -> Delivery:
    for _ in range(200):
        await deliverer.deliver_due()
        (delivery,) = await app.store.deliveries_for_job(job_id)
        if delivery.status != "pending":
            return delivery
        await asyncio.sleep(0.02)
    raise AssertionError("delivery never settled")


async def test_gives_up_after_max_attempts(
    app: JobsApp, images: InMemoryImages, always_500: tuple[str, list[str]]
) -> None:
    url, bodies = always_500
    await app.create_webhook(ALICE, url, SECRET, ["job.failed"])
    job_id = await _failed_job(app, images)
    deliverer = WebhookDeliverer(
        app.store, max_attempts=3, backoff_s=0.05, timeout_s=2, allow_private=True
    )
    await deliverer.start()
    try:
        delivery = await _until_settled(deliverer, app, job_id)
    finally:
        await deliverer.stop()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("failed", 3, 500)
    assert delivery.last_error == "HTTP 500"
    assert len(bodies) == 3
    assert len(set(bodies)) == 1


async def test_unreachable_receiver_is_recorded(app: JobsApp, images: InMemoryImages) -> None:
    await app.create_webhook(ALICE, "http://127.0.0.1:1/hook", SECRET, ["job.failed"])
    job_id = await _failed_job(app, images)
    deliverer = WebhookDeliverer(
        app.store, max_attempts=2, backoff_s=0.05, timeout_s=2, allow_private=True
    )
    await deliverer.start()
    try:
        delivery = await _until_settled(deliverer, app, job_id)
    finally:
        await deliverer.stop()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("failed", 2, None)
    assert delivery.last_error is not None
    assert "ConnectError" in delivery.last_error


async def test_a_delivery_claimed_by_a_deliverer_that_died_is_sent_once_its_lease_ends(
    app: JobsApp, images: InMemoryImages, always_500: tuple[str, list[str]]
) -> None:
    """A replica SIGKILLed between claiming a delivery and recording its POST holds it
    back for one POST timeout and a small margin, not longer: the next replica sends it."""
    url, bodies = always_500
    await app.create_webhook(ALICE, url, SECRET, ["job.failed"])
    job_id = await _failed_job(app, images)
    started = utc_now()
    dead = WebhookDeliverer(app.store, timeout_s=10, now=lambda: started)
    assert dead.lease == timedelta(seconds=10 + LEASE_MARGIN_S)
    claimed = await app.store.claim_deliveries(started, limit=8, lease=dead.lease)
    assert [task.delivery.job_id for task in claimed] == [job_id]

    async def sent_by_a_new_replica(after_s: float) -> int:
        survivor = WebhookDeliverer(
            app.store,
            timeout_s=10,
            allow_private=True,
            now=lambda: started + timedelta(seconds=after_s),
        )
        await survivor.start()
        try:
            return await survivor.deliver_due()
        finally:
            await survivor.stop()

    assert await sent_by_a_new_replica(10.0) == 0  # the POST may still be on its way
    assert await sent_by_a_new_replica(10.0 + LEASE_MARGIN_S + 0.1) == 1
    assert len(bodies) == 1


async def test_deleted_webhook_drops_its_deliveries(app: JobsApp, images: InMemoryImages) -> None:
    webhook = await app.create_webhook(ALICE, "http://127.0.0.1:1/hook", SECRET, ["job.failed"])
    job_id = await _failed_job(app, images)
    assert len(await app.store.deliveries_for_job(job_id)) == 1
    await app.delete_webhook(ALICE, webhook.webhook_id)
    assert await app.store.deliveries_for_job(job_id) == []


async def test_concurrent_idempotent_creates_make_one_job(
    app: JobsApp, images: InMemoryImages
) -> None:
    request = JobRequest(
        content_url=images.add("usr_alice"), style_urls=(images.add(None),), idempotency_key="k"
    )
    results = await asyncio.gather(*(app.create_job(ALICE, request) for _ in range(8)))
    assert len({job.job_id for job, _ in results}) == 1
    assert sum(created for _, created in results) == 1


async def test_receiver_resolving_to_a_private_address_is_refused(
    app: JobsApp, images: InMemoryImages, always_500: tuple[str, list[str]]
) -> None:
    """Without allow_private, a receiver on this machine is never called (SSRF guard)."""
    url, bodies = always_500
    await app.create_webhook(ALICE, url, SECRET, ["job.failed"])
    job_id = await _failed_job(app, images)
    deliverer = WebhookDeliverer(app.store, max_attempts=1, backoff_s=0.05, timeout_s=2)
    await deliverer.start()
    try:
        delivery = await _until_settled(deliverer, app, job_id)
    finally:
        await deliverer.stop()
    assert delivery.status == "failed"
    assert "loopback or private" in (delivery.last_error or "")
    assert bodies == []
