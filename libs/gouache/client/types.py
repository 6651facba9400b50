"""Typed results of the SDK, the same for REST and gRPC.

Each is built from the API's JSON (for gRPC, the reply's JSON form, which is what the edge
transcodes to REST), keeps it in `raw`, and is also a read-only mapping over it: code
written against the earlier dict results (`job["job_id"]`, `job.get("cached")`) still
works, while new code reads typed attributes (`job.job_id`, `job.cached`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

T = TypeVar("T")

FINAL_STATUSES = frozenset({"succeeded", "failed", "canceled"})


def _int(value: Any) -> int:
    """An integer field: JSON gives int64 as a string."""
    return int(value) if value not in (None, "") else 0


def _optional(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def _time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp (`2026-11-30T19:50:00.123Z`) as an aware datetime."""
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(item) for item in value or ())


class _Wire(Mapping[str, Any]):
    """A read-only mapping over `raw`, the JSON the result was built from."""

    raw: Mapping[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)


@dataclass(frozen=True, eq=False)
class Job(_Wire):
    """One stylization job as its owner sees it (GetJob, ListJobs, WaitJob, WatchJob)."""

    job_id: str
    status: str
    model_version: str
    latency_ms: int
    result_url: str | None
    error: str | None
    raw: Mapping[str, Any] = field(repr=False)
    requested_model_version: str = ""
    progress: float = 0.0
    eta_seconds: int = 0
    error_code: str | None = None
    cached: bool = False
    lane: str = ""
    content_url: str = ""
    style_urls: tuple[str, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict, repr=False)
    result_image_id: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    # The project the job belongs to (the creator's own id for their personal project) and
    # the user who created it.
    project_id: str = ""
    user_id: str = ""

    @property
    def final(self) -> bool:
        """Whether the job is succeeded, failed or canceled (it never changes again)."""
        return self.status in FINAL_STATUSES

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Job:
        return cls(
            job_id=str(data.get("job_id", "")),
            status=str(data.get("status", "")),
            model_version=str(data.get("model_version", "")),
            latency_ms=_int(data.get("latency_ms")),
            result_url=_optional(data.get("result_url")),
            error=_optional(data.get("error")),
            raw=data,
            requested_model_version=str(data.get("requested_model_version", "")),
            progress=float(data.get("progress") or 0.0),
            eta_seconds=_int(data.get("eta_seconds")),
            error_code=_optional(data.get("error_code")),
            cached=bool(data.get("cached", False)),
            lane=str(data.get("lane", "")),
            content_url=str(data.get("content_url", "")),
            style_urls=_strings(data.get("style_urls")),
            params=dict(data.get("params") or {}),
            result_image_id=str(data.get("result_image_id", "")),
            created_at=_time(data.get("created_at")),
            updated_at=_time(data.get("updated_at")),
            project_id=str(data.get("project_id", "")),
            user_id=str(data.get("user_id", "")),
        )


# The name wait() has always returned.
JobResult = Job


@dataclass(frozen=True, eq=False)
class JobCreated(_Wire):
    """The answer to CreateJob: the job's id, first status and the version that will run."""

    job_id: str
    status: str
    model_version: str
    eta_seconds: int
    # Answered from the result cache: the job is already "succeeded".
    cached: bool
    raw: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobCreated:
        return cls(
            job_id=str(data.get("job_id", "")),
            status=str(data.get("status", "")),
            model_version=str(data.get("model_version", "")),
            eta_seconds=_int(data.get("eta_seconds")),
            cached=bool(data.get("cached", False)),
            raw=data,
        )


@dataclass(frozen=True)
class BatchCounts:
    """How many items of a batch are in each job status."""

    pending: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    canceled: int = 0

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> BatchCounts:
        data = data or {}
        return cls(*(_int(data.get(name)) for name in cls.__dataclass_fields__))


@dataclass(frozen=True, eq=False)
class BatchItem(_Wire):
    """One item of a batch: its job in brief."""

    index: int
    job_id: str
    content_url: str
    status: str
    result_url: str | None
    error: str | None
    error_code: str | None
    cached: bool
    raw: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BatchItem:
        return cls(
            index=_int(data.get("index")),
            job_id=str(data.get("job_id", "")),
            content_url=str(data.get("content_url", "")),
            status=str(data.get("status", "")),
            result_url=_optional(data.get("result_url")),
            error=_optional(data.get("error")),
            error_code=_optional(data.get("error_code")),
            cached=bool(data.get("cached", False)),
            raw=data,
        )


@dataclass(frozen=True, eq=False)
class Batch(_Wire):
    """A batch: its status, counts per job status and (GetBatch, CreateBatch) one page of
    items; next_page_token pages on."""

    batch_id: str
    status: str
    total: int
    counts: BatchCounts
    model_version: str
    style_urls: tuple[str, ...]
    lane: str
    created_at: datetime | None
    finished_at: datetime | None
    # The page of items this answer carries (the JSON's "items"; `items()` is the mapping's).
    page: tuple[BatchItem, ...]
    next_page_token: str
    raw: Mapping[str, Any] = field(repr=False)

    @property
    def final(self) -> bool:
        """Whether every item is final (the batch's status is no longer "running")."""
        return self.status not in ("", "running")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Batch:
        return cls(
            batch_id=str(data.get("batch_id", "")),
            status=str(data.get("status", "")),
            total=_int(data.get("total")),
            counts=BatchCounts.from_json(data.get("counts")),
            model_version=str(data.get("model_version", "")),
            style_urls=_strings(data.get("style_urls")),
            lane=str(data.get("lane", "")),
            created_at=_time(data.get("created_at")),
            finished_at=_time(data.get("finished_at")),
            page=tuple(BatchItem.from_json(item) for item in data.get("items") or ()),
            next_page_token=str(data.get("next_page_token", "")),
            raw=data,
        )


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing; pass next_page_token back for the next ("" at the end).

    Iterating a page iterates its items; `page["batches"]`, `page.get(...)` read the JSON.
    """

    items: tuple[T, ...]
    next_page_token: str
    raw: Mapping[str, Any] = field(repr=False)

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.raw.get(key, default)


@dataclass(frozen=True, eq=False)
class Style(_Wire):
    """A style image with its catalogue record; use file_url (or style_id) in style_urls."""

    style_id: str
    title: str
    artist: str
    year: str
    license: str
    curated: bool
    file_url: str
    width: int
    height: int
    tags: tuple[str, ...]
    raw: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Style:
        return cls(
            style_id=str(data.get("style_id", "")),
            title=str(data.get("title", "")),
            artist=str(data.get("artist", "")),
            year=str(data.get("year", "")),
            license=str(data.get("license", "")),
            curated=bool(data.get("curated", False)),
            file_url=str(data.get("file_url", "")),
            width=_int(data.get("width")),
            height=_int(data.get("height")),
            tags=_strings(data.get("tags")),
            raw=data,
        )


@dataclass(frozen=True)
class ModelVersion:
    """A concrete, loadable model version."""

    name: str
    family: str
    description: str
    tile_size: int
    config: Mapping[str, Any]


@dataclass(frozen=True)
class ModelRoute:
    """An alias and the weighted versions behind it."""

    alias: str
    targets: tuple[tuple[str, int], ...]


@dataclass(frozen=True, eq=False)
class Models(_Wire):
    """ListModels: every registered version and alias."""

    versions: tuple[ModelVersion, ...]
    routes: tuple[ModelRoute, ...]
    raw: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Models:
        versions = tuple(
            ModelVersion(
                name=str(v.get("name", "")),
                family=str(v.get("family", "")),
                description=str(v.get("description", "")),
                tile_size=_int(v.get("tile_size")),
                config=json.loads(v["config_json"]) if v.get("config_json") else {},
            )
            for v in data.get("versions") or ()
        )
        routes = tuple(
            ModelRoute(
                alias=str(r.get("alias", "")),
                targets=tuple(
                    (str(t.get("model_version", "")), _int(t.get("weight")))
                    for t in r.get("targets") or ()
                ),
            )
            for r in data.get("routes") or ()
        )
        return cls(versions=versions, routes=routes, raw=data)


@dataclass(frozen=True, eq=False)
class Webhook(_Wire):
    """A registered webhook (its secret is never returned)."""

    webhook_id: str
    url: str
    events: tuple[str, ...]
    created_at: datetime | None
    raw: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Webhook:
        return cls(
            webhook_id=str(data.get("webhook_id", "")),
            url=str(data.get("url", "")),
            events=_strings(data.get("events")),
            created_at=_time(data.get("created_at")),
            raw=data,
        )


@dataclass(frozen=True, eq=False)
class Feedback(_Wire):
    """A saved rating (a second rating of the same job keeps its id)."""

    feedback_id: str
    job_id: str
    rating: int
    created_at: datetime | None
    raw: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Feedback:
        return cls(
            feedback_id=str(data.get("feedback_id", "")),
            job_id=str(data.get("job_id", "")),
            rating=_int(data.get("rating")),
            created_at=_time(data.get("created_at")),
            raw=data,
        )


@dataclass(frozen=True, eq=False)
class ModelVersionStats(_Wire):
    """Per model version aggregates: outcomes, latency percentiles, ratings."""

    model_version: str
    jobs_succeeded: int
    jobs_failed: int
    error_rate: float
    latency_p50_ms: float
    latency_p95_ms: float
    latency_p99_ms: float
    ratings_count: int
    rating_mean: float
    raw: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelVersionStats:
        return cls(
            model_version=str(data.get("model_version", "")),
            jobs_succeeded=_int(data.get("jobs_succeeded")),
            jobs_failed=_int(data.get("jobs_failed")),
            error_rate=float(data.get("error_rate") or 0.0),
            latency_p50_ms=float(data.get("latency_p50_ms") or 0.0),
            latency_p95_ms=float(data.get("latency_p95_ms") or 0.0),
            latency_p99_ms=float(data.get("latency_p99_ms") or 0.0),
            ratings_count=_int(data.get("ratings_count")),
            rating_mean=float(data.get("rating_mean") or 0.0),
            raw=data,
        )


@dataclass(frozen=True, eq=False)
class UsageRecord(_Wire):
    """What one user did in one project with one model version in a window (GetUsage)."""

    # The project the jobs belong to (the user's own id for their personal project) and
    # the user who created them.
    project_id: str
    user_id: str
    model_version: str
    jobs_succeeded: int
    jobs_failed: int
    # Of jobs_succeeded, those answered from the result cache.
    jobs_cached: int
    last_finished_at: datetime | None
    # Pixels of the results models made for the succeeded jobs, in millions.
    output_megapixels: float
    # The workers' time on the succeeded jobs (what plan quotas count), and the part of it
    # on a GPU, in seconds.
    compute_seconds: float
    gpu_seconds: float
    # "2026-11" or "2026-11-30" with group_by month or day; "" otherwise.
    period: str
    raw: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> UsageRecord:
        return cls(
            project_id=str(data.get("project_id", "")),
            user_id=str(data.get("user_id", "")),
            model_version=str(data.get("model_version", "")),
            jobs_succeeded=_int(data.get("jobs_succeeded")),
            jobs_failed=_int(data.get("jobs_failed")),
            jobs_cached=_int(data.get("jobs_cached")),
            last_finished_at=_time(data.get("last_finished_at")),
            output_megapixels=float(data.get("output_megapixels") or 0.0),
            compute_seconds=float(data.get("compute_seconds") or 0.0),
            gpu_seconds=float(data.get("gpu_seconds") or 0.0),
            period=str(data.get("period", "")),
            raw=data,
        )


@dataclass(frozen=True)
class Token:
    """An access token and its lifetime in seconds."""

    access_token: str
    expires_in: int

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Token:
        return cls(access_token=str(data["access_token"]), expires_in=_int(data["expires_in"]))


def items_of(data: Mapping[str, Any], key: str) -> Sequence[Mapping[str, Any]]:
    """The list under key of a listing's JSON (absent when empty)."""
    value = data.get(key) or ()
    return [item for item in value if isinstance(item, Mapping)]
