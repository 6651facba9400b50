"""The calls of the asyncio clients (REST and gRPC), written once over `_run`.

The same calls, arguments and results as sync_api.SyncApi (whose docstrings say what each
does), awaited; both build their requests with gouache.client.operations.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from gouache.client import compliance, plans, projects
from gouache.client import operations as ops
from gouache.client.compliance import AuditEvent, Erasure
from gouache.client.operations import Operation
from gouache.client.plans import PlanChange
from gouache.client.projects import Project, ProjectDetail, ProjectMember
from gouache.client.sync_api import DEFAULT_WEBHOOK_EVENTS
from gouache.client.types import (
    Batch,
    BatchItem,
    Feedback,
    Job,
    JobCreated,
    Models,
    ModelVersionStats,
    Page,
    Style,
    UsageRecord,
    Webhook,
)

T = TypeVar("T")
# A progress callback may be a plain function or a coroutine function.
AsyncJobCallback = Callable[[Job], Awaitable[None] | None]
AsyncBatchCallback = Callable[[Batch], Awaitable[None] | None]


async def _call(callback: Callable[[T], Awaitable[None] | None], value: T) -> None:
    result = callback(value)
    if inspect.isawaitable(result):
        await result


class AsyncApi(ABC):
    """Every call of the public API, for asyncio. Subclasses are the transports."""

    @abstractmethod
    async def _run(self, operation: Operation[T]) -> T:
        """Sends one operation (retrying what the retry policy allows) and parses the answer."""

    @abstractmethod
    def _job_updates(
        self, job_id: str, *, deadline: float, detailed: bool, poll_s: float
    ) -> AsyncGenerator[Job, None]:
        """As SyncApi._job_updates."""

    @abstractmethod
    async def upload(
        self, data: bytes, *, filename: str, content_type: str | None = None, kind: str = "content"
    ) -> str:
        """Stores an image ("content" or "style") and returns the file URL to use in jobs."""

    @abstractmethod
    async def download_result(self, job: Job) -> bytes:
        """The encoded bytes of a succeeded job's result image."""

    @abstractmethod
    async def close(self) -> None:
        """Closes the connection."""

    async def __aenter__(self: Any) -> Any:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def upload_file(self, path: Path, *, kind: str = "content") -> str:
        """As SyncApi.upload_file."""
        data = await asyncio.to_thread(path.read_bytes)
        return await self.upload(data, filename=path.name, kind=kind)

    # -- jobs -----------------------------------------------------------------------------

    async def create_job(
        self,
        content_url: str,
        style_urls: Sequence[str] | Mapping[str, float],
        *,
        model_version: str = "",
        params: Mapping[str, Any] | None = None,
        weights: Sequence[float] | None = None,
        alpha: float | None = None,
        preserve_color: bool | None = None,
        histogram_match: bool | None = None,
        max_side: int | None = None,
        seed: int | None = None,
        output_format: str | None = None,
        quality: int | None = None,
        lane: str = "",
        no_cache: bool = False,
        idempotency_key: str | None = None,
    ) -> JobCreated:
        """As SyncApi.create_job."""
        urls, style_weights = ops.styles_and_weights(style_urls, weights)
        merged = ops.stylize_params(
            params,
            weights=style_weights,
            alpha=alpha,
            preserve_color=preserve_color,
            histogram_match=histogram_match,
            max_side=max_side,
            seed=seed,
            output_format=output_format,
            quality=quality,
        )
        key = ops.new_idempotency_key() if idempotency_key is None else idempotency_key
        return await self._run(
            ops.create_job(
                content_url,
                urls,
                model_version=model_version,
                params=merged,
                idempotency_key=key,
                no_cache=no_cache,
                lane=lane,
            )
        )

    async def get_job(self, job_id: str) -> Job:
        """As SyncApi.get_job."""
        return await self._run(ops.get_job(job_id))

    async def cancel_job(self, job_id: str) -> Job:
        """As SyncApi.cancel_job."""
        return await self._run(ops.cancel_job(job_id))

    async def list_jobs(
        self, *, page_size: int = 0, page_token: str = "", status: str = ""
    ) -> Page[Job]:
        """As SyncApi.list_jobs."""
        return await self._run(ops.list_jobs(page_size, page_token, status))

    async def iter_jobs(self, *, status: str = "", page_size: int = 100) -> AsyncIterator[Job]:
        """As SyncApi.iter_jobs."""
        token = ""
        while True:
            page = await self.list_jobs(page_size=page_size, page_token=token, status=status)
            for job in page.items:
                yield job
            token = page.next_page_token
            if not token:
                return

    async def wait_job(self, job_id: str, *, timeout_s: float = 30.0) -> Job:
        """As SyncApi.wait_job."""
        return await self._run(ops.wait_job(job_id, timeout_s))

    async def wait(
        self,
        job_id: str,
        *,
        timeout_s: float = 600.0,
        progress: AsyncJobCallback | None = None,
        on_update: AsyncJobCallback | None = None,
        poll_s: float = 0.5,
    ) -> Job:
        """As SyncApi.wait; progress may also be a coroutine function."""
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        callback = progress or on_update
        deadline = time.monotonic() + timeout_s
        last: Job | None = None
        updates = self._job_updates(
            job_id, deadline=deadline, detailed=callback is not None, poll_s=poll_s
        )
        async with contextlib.aclosing(updates):
            async for job in updates:
                last = job
                if callback is not None:
                    await _call(callback, job)
                if job.final:
                    return job
        status = last.status if last else "unknown"
        raise TimeoutError(f"job {job_id} still {status} after {timeout_s:.0f} s")

    # -- batches --------------------------------------------------------------------------

    async def create_batch(
        self,
        content_urls: Sequence[str],
        style_urls: Sequence[str] | Mapping[str, float],
        *,
        model_version: str = "",
        params: Mapping[str, Any] | None = None,
        weights: Sequence[float] | None = None,
        alpha: float | None = None,
        preserve_color: bool | None = None,
        max_side: int | None = None,
        lane: str = "",
        no_cache: bool = False,
        idempotency_key: str | None = None,
    ) -> Batch:
        """As SyncApi.create_batch."""
        urls, style_weights = ops.styles_and_weights(style_urls, weights)
        merged = ops.stylize_params(
            params,
            weights=style_weights,
            alpha=alpha,
            preserve_color=preserve_color,
            max_side=max_side,
        )
        key = ops.new_idempotency_key() if idempotency_key is None else idempotency_key
        return await self._run(
            ops.create_batch(
                content_urls,
                urls,
                model_version=model_version,
                params=merged,
                idempotency_key=key,
                no_cache=no_cache,
                lane=lane,
            )
        )

    async def get_batch(self, batch_id: str, *, page_size: int = 0, page_token: str = "") -> Batch:
        """As SyncApi.get_batch."""
        return await self._run(ops.get_batch(batch_id, page_size, page_token))

    async def batch_items(self, batch_id: str, *, page_size: int = 500) -> list[BatchItem]:
        """As SyncApi.batch_items."""
        items: list[BatchItem] = []
        token = ""
        while True:
            page = await self.get_batch(batch_id, page_size=page_size, page_token=token)
            items.extend(page.page)
            token = page.next_page_token
            if not token:
                return items

    async def list_batches(self, *, page_size: int = 0, page_token: str = "") -> Page[Batch]:
        """As SyncApi.list_batches."""
        return await self._run(ops.list_batches(page_size, page_token))

    async def cancel_batch(self, batch_id: str) -> Batch:
        """As SyncApi.cancel_batch."""
        return await self._run(ops.cancel_batch(batch_id))

    async def wait_batch(
        self,
        batch_id: str,
        *,
        timeout_s: float = 24 * 3600.0,
        poll_s: float = 2.0,
        progress: AsyncBatchCallback | None = None,
        on_update: AsyncBatchCallback | None = None,
    ) -> Batch:
        """As SyncApi.wait_batch."""
        callback = progress or on_update
        deadline = time.monotonic() + timeout_s
        while True:
            batch = await self.get_batch(batch_id, page_size=1)
            if callback is not None:
                await _call(callback, batch)
            if batch.final:
                return batch
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"batch {batch_id} still running after {timeout_s:.0f} s")
            await asyncio.sleep(min(poll_s, remaining))

    # -- webhooks -------------------------------------------------------------------------

    async def create_webhook(
        self, url: str, secret: str, events: Sequence[str] = DEFAULT_WEBHOOK_EVENTS
    ) -> Webhook:
        """As SyncApi.create_webhook."""
        return await self._run(ops.create_webhook(url, secret, events))

    async def list_webhooks(self) -> list[Webhook]:
        """As SyncApi.list_webhooks."""
        return await self._run(ops.list_webhooks())

    async def delete_webhook(self, webhook_id: str) -> None:
        """As SyncApi.delete_webhook."""
        await self._run(ops.delete_webhook(webhook_id))

    # -- deletion, erasure and the audit log ----------------------------------------------

    async def delete_image(self, image_id: str) -> str:
        """As SyncApi.delete_image."""
        return await self._run(compliance.delete_image(image_id))

    async def delete_job(self, job_id: str) -> str:
        """As SyncApi.delete_job."""
        return await self._run(compliance.delete_job(job_id))

    async def erase_user(self, user_id: str) -> Erasure:
        """As SyncApi.erase_user."""
        return await self._run(compliance.erase_user(user_id))

    async def list_audit_events(
        self,
        *,
        since: datetime | None = None,
        actor_id: str = "",
        action: str = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> Page[AuditEvent]:
        """As SyncApi.list_audit_events."""
        return await self._run(
            compliance.list_audit_events(since, actor_id, action, page_size, page_token)
        )

    async def iter_audit_events(
        self, *, since: datetime | None = None, actor_id: str = "", action: str = ""
    ) -> AsyncIterator[AuditEvent]:
        """As SyncApi.iter_audit_events."""
        token = ""
        while True:
            page = await self.list_audit_events(
                since=since, actor_id=actor_id, action=action, page_size=100, page_token=token
            )
            for event in page.items:
                yield event
            token = page.next_page_token
            if not token:
                return

    # -- projects -------------------------------------------------------------------------

    async def create_project(self, name: str) -> Project:
        """As SyncApi.create_project."""
        return await self._run(projects.create_project(name))

    async def list_projects(self, *, all_projects: bool = False) -> list[Project]:
        """As SyncApi.list_projects."""
        found: list[Project] = []
        token = ""
        while True:
            page = await self._run(projects.list_projects(all_projects, 100, token))
            found.extend(page.items)
            token = page.next_page_token
            if not token:
                return found

    async def get_project(self, project_id: str) -> ProjectDetail:
        """As SyncApi.get_project."""
        return await self._run(projects.get_project(project_id))

    async def put_project_member(self, project_id: str, user_id: str, role: str) -> ProjectMember:
        """As SyncApi.put_project_member."""
        return await self._run(projects.put_project_member(project_id, user_id, role))

    async def remove_project_member(self, project_id: str, user_id: str) -> None:
        """As SyncApi.remove_project_member."""
        await self._run(projects.remove_project_member(project_id, user_id))

    # -- plans (admins) -------------------------------------------------------------------

    async def set_user_plan(self, user_id: str, plan: str) -> PlanChange:
        """As SyncApi.set_user_plan."""
        return await self._run(plans.set_user_plan(user_id, plan))

    async def set_project_plan(self, project_id: str, plan: str) -> PlanChange:
        """As SyncApi.set_project_plan."""
        return await self._run(plans.set_project_plan(project_id, plan))

    # -- models, styles, feedback, usage --------------------------------------------------

    async def list_models(self) -> Models:
        """As SyncApi.list_models."""
        return await self._run(ops.list_models())

    async def list_styles(self, *, curated: bool | None = None) -> list[Style]:
        """As SyncApi.list_styles."""
        styles: list[Style] = []
        token = ""
        while True:
            page = await self._run(ops.list_styles(curated, 100, token))
            styles.extend(page.items)
            token = page.next_page_token
            if not token:
                return styles

    async def submit_feedback(self, job_id: str, rating: int, comments: str = "") -> Feedback:
        """As SyncApi.submit_feedback."""
        return await self._run(ops.submit_feedback(job_id, rating, comments))

    async def list_model_stats(self) -> list[ModelVersionStats]:
        """As SyncApi.list_model_stats."""
        return await self._run(ops.list_model_stats())

    async def get_usage(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        user_id: str = "",
        group_by: str = "",
        project_id: str = "",
    ) -> list[UsageRecord]:
        """As SyncApi.get_usage."""
        return await self._run(ops.get_usage(since, until, user_id, group_by, project_id))
