"""Batches: many content images with one style set, their status and the item keys."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum

from gouache.runtime.errors import FailedPrecondition, InvalidArgument
from services.jobs.domain.jobs import JobStatus
from services.jobs.domain.paging import decode_cursor, encode_cursor
from services.jobs.domain.requests import (
    JobRequest,
    StylizeParams,
    check_url,
    validate_job_request,
)

DEFAULT_MAX_ITEMS = 500
DEFAULT_ITEM_PAGE_SIZE = 100
MAX_ITEM_PAGE_SIZE = 500
BATCH_FINISHED_EVENT = "batch.finished"
_TOKEN_VERSION = 1


class BatchStatus(StrEnum):
    """Where a batch is; the strings are part of the public API."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PARTIALLY_SUCCEEDED = "partially_succeeded"
    CANCELED = "canceled"

    @property
    def is_final(self) -> bool:
        """Every status but running is final: the batch never changes again."""
        return self is not BatchStatus.RUNNING


@dataclass(frozen=True)
class BatchRequest:
    """A CreateBatch request in domain terms."""

    content_urls: tuple[str, ...]
    style_urls: tuple[str, ...]
    model_version: str = ""
    params: StylizeParams = field(default_factory=StylizeParams)
    idempotency_key: str = ""
    no_cache: bool = False
    lane: str = ""

    def item(self, index: int) -> JobRequest:
        """The job request of item `index` (its idempotency key is set by the caller)."""
        return JobRequest(
            content_url=self.content_urls[index],
            style_urls=self.style_urls,
            model_version=self.model_version,
            params=self.params,
            no_cache=self.no_cache,
            lane=self.lane,
        )

    def fingerprint(self) -> str:
        """A digest of everything that defines the batch, to compare idempotent retries.

        As for jobs, the key and no_cache are left out. Compare normalized requests.
        """
        canonical = json.dumps(
            {
                "content_urls": list(self.content_urls),
                "style_urls": list(self.style_urls),
                "model_version": self.model_version,
                "params": self.params.to_dict(),
                "lane": self.lane,
            },
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


def validate_batch_request(request: BatchRequest, *, max_items: int) -> BatchRequest:
    """Checks a CreateBatch request up front; returns it normalized.

    The shared fields follow CreateJob's rules (a violation names the same field); each
    content URL is checked under its own name, content_urls[i].
    """
    if not request.content_urls:
        raise InvalidArgument(
            "content_urls needs at least one content image URL (a file_url from SignUpload)",
            field="content_urls",
        )
    if len(request.content_urls) > max_items:
        raise InvalidArgument(
            f"content_urls has {len(request.content_urls)} entries; at most {max_items} "
            "fit in one batch: split the catalog into several batches",
            field="content_urls",
        )
    content_urls = tuple(
        check_url(url, f"content_urls[{index}]") for index, url in enumerate(request.content_urls)
    )
    shared = validate_job_request(
        JobRequest(
            content_url=content_urls[0],
            style_urls=request.style_urls,
            model_version=request.model_version,
            params=request.params,
            idempotency_key=request.idempotency_key,
            no_cache=request.no_cache,
            lane=request.lane,
        )
    )
    return BatchRequest(
        content_urls=content_urls,
        style_urls=shared.style_urls,
        model_version=shared.model_version,
        params=shared.params,
        idempotency_key=shared.idempotency_key,
        no_cache=shared.no_cache,
        lane=shared.lane,
    )


def item_key(batch_id: str, index: int) -> str:
    """The idempotency key of a batch's item job: a retry finds the item it created."""
    return f"{batch_id}/{index}"


@dataclass(frozen=True)
class Batch:
    """One batch as stored; its items are jobs carrying its id."""

    batch_id: str
    owner_id: str
    status: BatchStatus
    total: int
    content_urls: tuple[str, ...]
    style_urls: tuple[str, ...]
    requested_model_version: str
    params: StylizeParams
    lane: str
    no_cache: bool
    created_at: datetime
    updated_at: datetime
    idempotency_key: str | None = None
    request_fingerprint: str = ""
    finished_at: datetime | None = None

    def request(self) -> BatchRequest:
        """The (normalized) request the batch was created from."""
        return BatchRequest(
            content_urls=self.content_urls,
            style_urls=self.style_urls,
            model_version=self.requested_model_version,
            params=self.params,
            idempotency_key=self.idempotency_key or "",
            no_cache=self.no_cache,
            lane=self.lane,
        )


def derive_status(counts: Mapping[JobStatus, int], total: int) -> BatchStatus:
    """A batch's status from how many of its items are in each job status.

    Running while an item is not final or not created yet; then succeeded when all
    items succeeded, failed when none did, partially_succeeded otherwise.
    """
    final = sum(counts.get(status, 0) for status in JobStatus if status.is_final)
    if final < total:
        return BatchStatus.RUNNING
    succeeded = counts.get(JobStatus.SUCCEEDED, 0)
    if succeeded >= total:
        return BatchStatus.SUCCEEDED
    if succeeded == 0:
        return BatchStatus.FAILED
    return BatchStatus.PARTIALLY_SUCCEEDED


def settle(batch: Batch, counts: Mapping[JobStatus, int], now: datetime) -> Batch | None:
    """The batch once its items' counts make it final; None when nothing changes.

    A batch already final never changes again, so the change that ends a batch is
    found exactly once (callers hold the batch's row lock while counting).
    """
    if batch.status.is_final:
        return None
    status = derive_status(counts, batch.total)
    if not status.is_final:
        return None
    return replace(batch, status=status, updated_at=now, finished_at=now)


def cancel(batch: Batch, now: datetime) -> Batch | None:
    """A running batch, canceled; None for a batch that is already final (a no-op)."""
    if batch.status.is_final:
        return None
    return replace(batch, status=BatchStatus.CANCELED, updated_at=now, finished_at=now)


def check_open(batch: Batch) -> None:
    """Items are only created for a batch that is still running."""
    if batch.status.is_final:
        raise FailedPrecondition(
            f"batch {batch.batch_id} is already {batch.status.value}; no more items are created",
            reason="batch_final",
        )


def item_page_size(requested: int) -> int:
    """0 means the default (100); otherwise 1-500."""
    if requested == 0:
        return DEFAULT_ITEM_PAGE_SIZE
    if not 1 <= requested <= MAX_ITEM_PAGE_SIZE:
        raise InvalidArgument(
            f"page_size must be between 1 and {MAX_ITEM_PAGE_SIZE} "
            f"(0 for {DEFAULT_ITEM_PAGE_SIZE}), got {requested}",
            field="page_size",
        )
    return requested


def encode_item_token(next_index: int) -> str:
    """The opaque next_page_token of a batch's items: the index the next page starts at."""
    raw = json.dumps({"v": _TOKEN_VERSION, "i": next_index}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_item_token(token: str) -> int:
    """Reads a token from encode_item_token; anything else is INVALID_ARGUMENT."""
    if not token:
        return 0
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(data, dict) or data.get("v") != _TOKEN_VERSION:
            raise ValueError("unknown token version")
        index = data["i"]
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise ValueError("bad index")
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise InvalidArgument(
            "page_token is not valid; pass the next_page_token of the previous response "
            "unchanged, or leave it empty for the first page",
            field="page_token",
        ) from None
    return index


def _timestamp(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def counts_dict(counts: Mapping[JobStatus, int]) -> dict[str, int]:
    """Counts per job status, every status present (the API and webhook form)."""
    return {status.value: int(counts.get(status, 0)) for status in JobStatus}


def finished_payload(
    delivery_id: str, created_at: datetime, batch: Batch, counts: Mapping[JobStatus, int]
) -> str:
    """The JSON body POSTed for a batch.finished delivery: the batch and its counts."""
    return json.dumps(
        {
            "id": delivery_id,
            "event": BATCH_FINISHED_EVENT,
            "created_at": _timestamp(created_at),
            "batch": {
                "batch_id": batch.batch_id,
                "status": batch.status.value,
                "total": batch.total,
                "counts": counts_dict(counts),
                "created_at": _timestamp(batch.created_at),
                "finished_at": _timestamp(batch.finished_at),
            },
        },
        separators=(",", ":"),
    )


@dataclass(frozen=True)
class BatchCursor:
    """Where the previous page of batches ended: the last one's creation time and id."""

    created_at: datetime
    batch_id: str

    def encode(self) -> str:
        """The opaque next_page_token of ListBatches."""
        return encode_cursor(self.created_at, self.batch_id)

    @classmethod
    def decode(cls, token: str) -> BatchCursor:
        """Reads a token from encode(); anything else is INVALID_ARGUMENT."""
        created_at, batch_id = decode_cursor(token, "bat")
        return cls(created_at=created_at, batch_id=batch_id)
