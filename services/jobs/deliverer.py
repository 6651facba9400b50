"""Sends due webhook deliveries: signed POSTs, retried with exponential backoff."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import httpx

from gouache.bus.jetstream import backoff_delay
from gouache.db import utc_now
from services.jobs.domain.webhooks import (
    AttemptOutcome,
    DeliveryStatus,
    after_attempt,
    blocked_address,
    sign,
)
from services.jobs.store import DeliveryTask, JobStore

logger = logging.getLogger(__name__)

USER_AGENT = "gouache-webhooks/1"

LEASE_MARGIN_S = 5.0
"""How long a claimed delivery stays leased beyond the POST's timeout (recording it)."""


class WebhookDeliverer:
    """One background task that POSTs pending deliveries when they are due.

    A claimed delivery is leased (its next attempt pushed past the POST's timeout) so
    another replica does not send it at the same time. A pass claims no more than it
    sends at once (`concurrency`), so every claimed POST starts at once and the lease
    only needs to outlast one timeout: LEASE_MARGIN_S more. A replica killed between
    claiming and recording an attempt holds its deliveries back that long and no longer
    (the 40 s lease this had before could outlast the chaos test's 30 s wait for the
    webhooks of jobs it had seen end). Delivery is at least once: receivers deduplicate
    on X-Gouache-Delivery.
    """

    def __init__(
        self,
        store: JobStore,
        *,
        timeout_s: float = 10.0,
        max_attempts: int = 6,
        backoff_s: float = 1.0,
        poll_interval_s: float = 0.5,
        concurrency: int = 8,
        allow_private: bool = False,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._store = store
        self._timeout_s = timeout_s
        self._max_attempts = max_attempts
        self._backoff_s = backoff_s
        self._poll_interval_s = poll_interval_s
        self._concurrency = concurrency
        self.lease = timedelta(seconds=timeout_s + LEASE_MARGIN_S)
        self._allow_private = allow_private
        self._now = now
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None

    def notify(self) -> None:
        """Look for due deliveries now (call after committing new ones)."""
        self._wake.set()

    async def start(self) -> None:
        """Starts delivering in a background task."""
        if self._task is not None:
            raise RuntimeError("the webhook deliverer is already running")
        # trust_env=False: receivers are reached directly, never through a proxy from the env.
        self._client = httpx.AsyncClient(
            timeout=self._timeout_s, follow_redirects=False, trust_env=False
        )
        self._task = asyncio.create_task(self._run(), name="webhook-deliverer")

    async def stop(self) -> None:
        """Stops; a delivery cut short is retried when its lease runs out."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def deliver_due(self) -> int:
        """Sends one batch of due deliveries; returns how many were attempted."""
        tasks = await self._store.claim_deliveries(
            self._now(), limit=self._concurrency, lease=self.lease
        )
        # No more are claimed than are sent at once: every POST starts now, within its lease.
        await asyncio.gather(*(self._send(task) for task in tasks))
        return len(tasks)

    async def _run(self) -> None:
        failures = 0
        while True:
            self._wake.clear()
            try:
                sent = await self.deliver_due()
            except Exception:
                failures += 1
                delay = backoff_delay(failures, initial=0.5, maximum=30.0)
                logger.warning(
                    "webhook delivery pass failed, retrying in %.1fs", delay, exc_info=True
                )
                await asyncio.sleep(delay)
                continue
            failures = 0
            if sent < self._concurrency:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll_interval_s)

    async def _send(self, task: DeliveryTask) -> None:
        if self._client is None:
            raise RuntimeError("the webhook deliverer is not started")
        delivery = task.delivery
        stamp = int(self._now().timestamp())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Gouache-Event": delivery.event,
            "X-Gouache-Delivery": delivery.delivery_id,
            "X-Gouache-Timestamp": str(stamp),
            "X-Gouache-Signature": sign(task.secret, stamp, delivery.payload),
        }
        refusal = None if self._allow_private else await _private_resolution(task.url)
        if refusal is not None:
            outcome = AttemptOutcome(error=refusal)
        else:
            try:
                response = await self._client.post(
                    task.url, content=delivery.payload.encode(), headers=headers
                )
                outcome = AttemptOutcome(status_code=response.status_code)
            except httpx.HTTPError as exc:
                outcome = AttemptOutcome(error=f"{type(exc).__name__}: {exc}".rstrip(": "))
        result = after_attempt(
            delivery.attempts,
            outcome,
            self._now(),
            max_attempts=self._max_attempts,
            backoff_base_s=self._backoff_s,
        )
        await self._store.record_attempt(delivery.delivery_id, result, self._now())
        extra = {
            "delivery_id": delivery.delivery_id,
            "webhook_id": delivery.webhook_id,
            "job_id": delivery.job_id,
            "event": delivery.event,
            "attempt": result.attempts,
            "status_code": outcome.status_code,
            "error": outcome.error,
        }
        if result.status is DeliveryStatus.DELIVERED:
            logger.info("webhook delivered", extra=extra)
        elif result.status is DeliveryStatus.FAILED:
            logger.warning("webhook delivery failed for good", extra=extra)
        else:
            logger.info("webhook delivery will be retried", extra=extra)


async def _private_resolution(url: str) -> str | None:
    """Why a receiver must not be called: its host resolves to a private address.

    Checked before every POST, since a public name can be pointed at an internal
    address after the webhook was registered.
    """
    host = urlsplit(url).hostname or ""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None)
    except OSError as exc:
        return f"could not resolve {host}: {exc}"
    for info in infos:
        address = str(info[4][0])
        if blocked_address(address):
            return f"refused: {host} resolves to {address}, a loopback or private address"
    return None
