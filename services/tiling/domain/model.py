"""What tiling works with: jobs, their parameters and inputs, the ports it calls, outcomes."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Protocol, TypeVar

import numpy as np
from numpy.typing import NDArray

from gouache.results import ResultLink

logger = logging.getLogger(__name__)

Pixels = NDArray[np.uint8]
T = TypeVar("T")

MAX_TILE_SIZE = 2048
MAX_PLAN_SIDE = 8192
OUTPUT_FORMATS = ("png", "jpeg", "webp")
DEFAULT_QUALITY = 90


@dataclass(frozen=True)
class JobParams:
    """The job's stylization parameters; None means "the default" for optional ones."""

    alpha: float | None = None
    tv_weight: float | None = None
    luminance_only: bool = False
    histogram_match: bool = False
    tile_size: int | None = None
    overlap: int | None = None
    seed: int | None = None
    weights: tuple[float, ...] = ()
    prompt: str | None = None
    output_format: str = ""
    quality: int | None = None
    # Longest side of the output: a larger content is shrunk to it before stylizing.
    max_side: int | None = None


@dataclass(frozen=True)
class Job:
    """A created job as the worker sees it."""

    job_id: str
    owner_id: str
    content_image_id: str
    style_image_ids: tuple[str, ...]
    model_version: str
    params: JobParams = field(default_factory=JobParams)
    # host:port of the inference server of model_version; "" for the worker's default.
    inference_endpoint: str = ""


@dataclass(frozen=True)
class StyleInput:
    """A style image as sent to inference, under a key stable for its bytes and size."""

    key: str
    pixels: Pixels


@dataclass(frozen=True)
class StoredImage:
    """What storage answered for an uploaded image."""

    image_id: str
    width: int
    height: int
    # Only when the upload asked for one (link_ttl_s).
    link: ResultLink | None = None


class Storage(Protocol):
    """The storage operations a worker needs, acting as a service for the job's owner."""

    async def download(self, image_id: str) -> bytes:
        """Returns an image's encoded bytes."""
        ...

    async def upload(
        self,
        *,
        image_id: str,
        owner_id: str,
        filename: str,
        content_type: str,
        data: bytes,
        metadata_json: str,
        link_ttl_s: int = 0,
    ) -> StoredImage:
        """Stores a result under image_id; the same id and bytes again return the first.
        With link_ttl_s, also returns a signed GET URL valid that long."""
        ...


class Inference(Protocol):
    """The inference call a worker needs."""

    async def stylize_batch(
        self,
        model_version: str,
        tiles: Sequence[Pixels],
        styles: Sequence[StyleInput],
        params: JobParams,
        *,
        endpoint: str = "",
    ) -> list[Pixels]:
        """Stylizes tiles of one image with the same styles; outputs in input order.

        endpoint is the inference server of the version ("" for the default one).
        """
        ...


# An answer about a model version as served at an endpoint ("" for the default inference).
ModelQuery = Callable[[str, str], Awaitable[T]]


class ExecutionEvents(Protocol):
    """Where a worker reports a job's progress and outcome (JetStream in production)."""

    async def progress(
        self, job_id: str, *, event_id: str, fraction: float, stage: str, started_at: datetime
    ) -> None:
        """Reports how far the job got."""
        ...

    async def succeeded(
        self,
        job_id: str,
        *,
        event_id: str,
        result_image_id: str,
        compute_ms: int,
        tiles: int,
        output_width: int,
        output_height: int,
        device: str = "",
        link: ResultLink | None = None,
    ) -> None:
        """Reports the stored result, its size in pixels, the device kind the model ran
        on ("" when unknown) and the result's signed URL when storage gave one."""
        ...

    async def failed(
        self, job_id: str, *, event_id: str, error_code: str, error_message: str
    ) -> None:
        """Reports that the worker gave up on the job."""
        ...


class Outcome(Enum):
    """How one delivery of a job ended, when it did not ask to be retried."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class RetryLater(Exception):
    """The job failed for a reason that may pass (a service down, a deadline): redeliver it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Failure:
    """An error classified: its status code name, a message for the job's owner, retry or not."""

    code: str
    message: str
    permanent: bool


class CanceledJobs:
    """The ids of recently canceled jobs, the oldest forgotten first beyond `capacity`.

    A running job can `watch` for its cancellation, to stop its inference call the moment
    the JobCanceled event arrives instead of at its next check.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._watchers: dict[str, list[Callable[[], object]]] = {}

    def add(self, job_id: str) -> None:
        """Remembers that a job was canceled and tells whoever watches it."""
        self._ids[job_id] = None
        self._ids.move_to_end(job_id)
        while len(self._ids) > self._capacity:
            self._ids.popitem(last=False)
        for on_cancel in self._watchers.pop(job_id, []):
            on_cancel()

    @contextmanager
    def watch(self, job_id: str, on_cancel: Callable[[], object]) -> Iterator[None]:
        """Calls `on_cancel` once if the job is canceled while the block runs (or was)."""
        if job_id in self._ids:
            on_cancel()
            yield
            return
        watchers = self._watchers.setdefault(job_id, [])
        watchers.append(on_cancel)
        try:
            yield
        finally:
            if on_cancel in watchers:
                watchers.remove(on_cancel)
            if not watchers and self._watchers.get(job_id) is watchers:
                del self._watchers[job_id]

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)


@dataclass
class WorkerStatus:
    """What this worker is doing and has done since it started."""

    running_job_ids: list[str] = field(default_factory=list)
    jobs_succeeded: int = 0
    jobs_failed: int = 0
    redeliveries: int = 0
