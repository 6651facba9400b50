"""The calls of the synchronous clients (REST and gRPC), written once over `_run`.

A transport (rest.GouacheClient, grpc_clients.GouacheGrpcClient) supplies how one operation
is sent (`_run`, with its retries), how an image is uploaded and downloaded, and how a
job's updates arrive (`_job_updates`); everything else is here.
"""

from __future__ import annotations

import contextlib
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from gouache.client import compliance, plans, projects
from gouache.client import operations as ops
from gouache.client.compliance import AuditEvent, Erasure
from gouache.client.operations import Operation
from gouache.client.plans import PlanChange
from gouache.client.projects import Project, ProjectDetail, ProjectMember
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
JobCallback = Callable[[Job], None]
BatchCallback = Callable[[Batch], None]
DEFAULT_WEBHOOK_EVENTS = ("job.succeeded", "job.failed")


class SyncApi(ABC):
    """Every call of the public API, blocking. Subclasses are the transports."""

    @abstractmethod
    def _run(self, operation: Operation[T]) -> T:
        """Sends one operation (retrying what the retry policy allows) and parses the answer."""

    @abstractmethod
    def _job_updates(
        self, job_id: str, *, deadline: float, detailed: bool, poll_s: float
    ) -> Generator[Job, None, None]:
        """The job's states until it is final or the monotonic deadline passes; detailed:
        every change (for a progress callback), else at least the final state."""

    @abstractmethod
    def upload(
        self, data: bytes, *, filename: str, content_type: str | None = None, kind: str = "content"
    ) -> str:
        """Stores an image ("content" or "style") and returns the file URL to use in jobs."""

    @abstractmethod
    def download_result(self, job: Job) -> bytes:
        """The encoded bytes of a succeeded job's result image."""

    @abstractmethod
    def close(self) -> None:
        """Closes the connection."""

    def __enter__(self: Any) -> Any:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def upload_file(self, path: Path, *, kind: str = "content") -> str:
        """Uploads a file (its type guessed from its name) and returns its file URL."""
        return self.upload(path.read_bytes(), filename=path.name, kind=kind)

    # -- jobs -----------------------------------------------------------------------------

    def create_job(
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
        """Creates a stylization job (POST /v1/jobs, JobsService.CreateJob).

        style_urls: one to four style file URLs or curated style ids, or a mapping of each
        to its weight (weights= is the other way to weight them). model_version: an alias
        ("default", "adain", "gatys"...) or a version; empty for the default. alpha: style
        strength 0-1; preserve_color: keep the content's colours; max_side: shrink the
        content's longest side to at most this many pixels first; lane: "preview" (fast,
        at most 512 px) or "export" (the default); no_cache: run the model even if the
        result cache has an answer. params takes any other StylizeParams field by its API
        name. idempotency_key: None (the default) makes a fresh one, so the create is
        retried safely after a lost answer; "" sends none (then it is not retried).
        """
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
        return self._run(
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

    def get_job(self, job_id: str) -> Job:
        """One of your jobs (GET /v1/jobs/{job_id})."""
        return self._run(ops.get_job(job_id))

    def cancel_job(self, job_id: str) -> Job:
        """Cancels a job not yet final; canceling a canceled job returns it as it is."""
        return self._run(ops.cancel_job(job_id))

    def list_jobs(self, *, page_size: int = 0, page_token: str = "", status: str = "") -> Page[Job]:
        """One page of your jobs, newest first (page_size 1-100, default 20), optionally
        only those in one status."""
        return self._run(ops.list_jobs(page_size, page_token, status))

    def iter_jobs(self, *, status: str = "", page_size: int = 100) -> Iterator[Job]:
        """Every one of your jobs, newest first, fetching pages as they are consumed."""
        token = ""
        while True:
            page = self.list_jobs(page_size=page_size, page_token=token, status=status)
            yield from page.items
            token = page.next_page_token
            if not token:
                return

    def wait_job(self, job_id: str, *, timeout_s: float = 30.0) -> Job:
        """One long poll (JobsService.WaitJob): the job once final, or as it is after
        timeout_s (at most 60)."""
        return self._run(ops.wait_job(job_id, timeout_s))

    def wait(
        self,
        job_id: str,
        *,
        timeout_s: float = 600.0,
        progress: JobCallback | None = None,
        on_update: JobCallback | None = None,
        poll_s: float = 0.5,
    ) -> Job:
        """Waits until the job is final and returns it; TimeoutError after timeout_s.

        progress (or on_update, its earlier name) is called with the job at each change
        (status, progress fraction, eta), the final state included. Without it the
        client long-polls; with it, REST reads the job's event stream
        (GET /v1/jobs/{id}:events) and gRPC JobsService.WatchJob.
        """
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        callback = progress or on_update
        deadline = time.monotonic() + timeout_s
        last: Job | None = None
        updates = self._job_updates(
            job_id, deadline=deadline, detailed=callback is not None, poll_s=poll_s
        )
        with contextlib.closing(updates):
            for job in updates:
                last = job
                if callback is not None:
                    callback(job)
                if job.final:
                    return job
        status = last.status if last else "unknown"
        raise TimeoutError(f"job {job_id} still {status} after {timeout_s:.0f} s")

    # -- batches --------------------------------------------------------------------------

    def create_batch(
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
        """Creates a batch (POST /v1/batches): one job per content image (up to 500), all
        with the same styles, model and params, as create_job. Sending it again with the
        same idempotency key returns it and creates only missing items."""
        urls, style_weights = ops.styles_and_weights(style_urls, weights)
        merged = ops.stylize_params(
            params,
            weights=style_weights,
            alpha=alpha,
            preserve_color=preserve_color,
            max_side=max_side,
        )
        key = ops.new_idempotency_key() if idempotency_key is None else idempotency_key
        return self._run(
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

    def get_batch(self, batch_id: str, *, page_size: int = 0, page_token: str = "") -> Batch:
        """A batch: status, counts per job status and one page of items (1-500)."""
        return self._run(ops.get_batch(batch_id, page_size, page_token))

    def batch_items(self, batch_id: str, *, page_size: int = 500) -> list[BatchItem]:
        """Every item of a batch in request order (pages through GetBatch)."""
        items: list[BatchItem] = []
        token = ""
        while True:
            page = self.get_batch(batch_id, page_size=page_size, page_token=token)
            items.extend(page.page)
            token = page.next_page_token
            if not token:
                return items

    def list_batches(self, *, page_size: int = 0, page_token: str = "") -> Page[Batch]:
        """One page of your batches, newest first (counts, no items)."""
        return self._run(ops.list_batches(page_size, page_token))

    def cancel_batch(self, batch_id: str) -> Batch:
        """Cancels every item of a batch that is not final."""
        return self._run(ops.cancel_batch(batch_id))

    def wait_batch(
        self,
        batch_id: str,
        *,
        timeout_s: float = 24 * 3600.0,
        poll_s: float = 2.0,
        progress: BatchCallback | None = None,
        on_update: BatchCallback | None = None,
    ) -> Batch:
        """Polls the batch every poll_s until it is final and returns it; progress (or
        on_update) sees it after each poll. TimeoutError after timeout_s."""
        callback = progress or on_update
        deadline = time.monotonic() + timeout_s
        while True:
            batch = self.get_batch(batch_id, page_size=1)
            if callback is not None:
                callback(batch)
            if batch.final:
                return batch
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"batch {batch_id} still running after {timeout_s:.0f} s")
            time.sleep(min(poll_s, remaining))

    # -- webhooks -------------------------------------------------------------------------

    def create_webhook(
        self, url: str, secret: str, events: Sequence[str] = DEFAULT_WEBHOOK_EVENTS
    ) -> Webhook:
        """Registers a webhook: url gets a POST of each event ("job.succeeded",
        "job.failed", "job.canceled", "job.running", "batch.finished") signed with secret
        (at least 16 characters) in X-Gouache-Signature (HMAC-SHA256)."""
        return self._run(ops.create_webhook(url, secret, events))

    def list_webhooks(self) -> list[Webhook]:
        """Your webhooks."""
        return self._run(ops.list_webhooks())

    def delete_webhook(self, webhook_id: str) -> None:
        """Deletes one of your webhooks."""
        self._run(ops.delete_webhook(webhook_id))

    # -- deletion, erasure and the audit log ----------------------------------------------

    def delete_image(self, image_id: str) -> str:
        """Deletes one of your content or style images with its bytes (an admin: anyone's)
        and returns its id; a job's result is deleted with the job. NotFoundError when it
        is already gone."""
        return self._run(compliance.delete_image(image_id))

    def delete_job(self, job_id: str) -> str:
        """Deletes one of your jobs (an admin: anyone's) with its result image, webhook
        deliveries and result-cache entry, canceling it first if it is not final; returns
        its id. NotFoundError when it is already gone."""
        return self._run(compliance.delete_job(job_id))

    def erase_user(self, user_id: str) -> Erasure:
        """Erases everything gouache holds of a user (GDPR): images, results, jobs, batches,
        webhooks, ratings, API keys and the account (yourself, or anyone for an admin).
        Carried out in the background: the answer says "pending" or "done", and calling
        again reports where it stands. Irreversible."""
        return self._run(compliance.erase_user(user_id))

    def list_audit_events(
        self,
        *,
        since: datetime | None = None,
        actor_id: str = "",
        action: str = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> Page[AuditEvent]:
        """One page of the audit log (admins), newest first: events at or after since (an
        aware datetime), by one actor_id, of one action ("job.deleted", ...); page_size
        1-100 (0: 50)."""
        return self._run(
            compliance.list_audit_events(since, actor_id, action, page_size, page_token)
        )

    def iter_audit_events(
        self, *, since: datetime | None = None, actor_id: str = "", action: str = ""
    ) -> Iterator[AuditEvent]:
        """Every audit event that matches, newest first, fetching pages as they are consumed."""
        token = ""
        while True:
            page = self.list_audit_events(
                since=since, actor_id=actor_id, action=action, page_size=100, page_token=token
            )
            yield from page.items
            token = page.next_page_token
            if not token:
                return

    # -- projects -------------------------------------------------------------------------

    def create_project(self, name: str) -> Project:
        """A new shared project (1-100 characters of name) whose owner is you; work in it
        with a client made with project=its project_id."""
        return self._run(projects.create_project(name))

    def list_projects(self, *, all_projects: bool = False) -> list[Project]:
        """Your projects with your role in each, the personal one first (admins: every
        shared project with all_projects)."""
        found: list[Project] = []
        token = ""
        while True:
            page = self._run(projects.list_projects(all_projects, 100, token))
            found.extend(page.items)
            token = page.next_page_token
            if not token:
                return found

    def get_project(self, project_id: str) -> ProjectDetail:
        """A project you are a member of (admins: any), with its members."""
        return self._run(projects.get_project(project_id))

    def put_project_member(self, project_id: str, user_id: str, role: str) -> ProjectMember:
        """Adds a user to a project you own, or changes their role: "owner", "editor" or
        "viewer". The last owner cannot be demoted (FailedPreconditionError)."""
        return self._run(projects.put_project_member(project_id, user_id, role))

    def remove_project_member(self, project_id: str, user_id: str) -> None:
        """Removes a member from a project you own, or yourself from any project (leave);
        the last owner cannot be removed."""
        self._run(projects.remove_project_member(project_id, user_id))

    # -- plans (admins) -------------------------------------------------------------------

    def set_user_plan(self, user_id: str, plan: str) -> PlanChange:
        """Puts a user on a plan ("free", "pro" or "enterprise"; admins only). Their tokens
        carry it from the next issue: a client already holding a token sees it when it
        gets its next one (at most the token lifetime, 15 minutes by default, later)."""
        return self._run(plans.set_user_plan(user_id, plan))

    def set_project_plan(self, project_id: str, plan: str) -> PlanChange:
        """Puts a shared project on a plan (admins only); tokens acting in it carry it from
        their next issue. A personal project's id (a user id) sets that user's plan."""
        return self._run(plans.set_project_plan(project_id, plan))

    # -- models, styles, feedback, usage --------------------------------------------------

    def list_models(self) -> Models:
        """Every model version and alias."""
        return self._run(ops.list_models())

    def list_styles(self, *, curated: bool | None = None) -> list[Style]:
        """Style images: the curated catalogue (True), your own (False) or both (None)."""
        styles: list[Style] = []
        token = ""
        while True:
            page = self._run(ops.list_styles(curated, 100, token))
            styles.extend(page.items)
            token = page.next_page_token
            if not token:
                return styles

    def submit_feedback(self, job_id: str, rating: int, comments: str = "") -> Feedback:
        """Rates one of your succeeded jobs, 1 (worst) to 5 (best); again replaces it."""
        return self._run(ops.submit_feedback(job_id, rating, comments))

    def list_model_stats(self) -> list[ModelVersionStats]:
        """Per model version: outcomes, error rate, latency percentiles, mean rating."""
        return self._run(ops.list_model_stats())

    def get_usage(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        user_id: str = "",
        group_by: str = "",
        project_id: str = "",
    ) -> list[UsageRecord]:
        """Jobs succeeded, failed and cached, output megapixels and compute seconds per
        project, user and model version, finished in [since, until), per UTC "day" or
        "month" with group_by. Admins see everyone (or one project_id, or user_id); a
        project's owner, with a client acting in it, sees that project_id's; others only
        the jobs they created."""
        return self._run(ops.get_usage(since, until, user_id, group_by, project_id))
